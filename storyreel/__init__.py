"""storyreel: script to finished short video, every clip generated in parallel on Temporal."""

__version__ = "0.1.0"
