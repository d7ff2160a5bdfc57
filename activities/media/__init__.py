"""FFmpeg helpers shared by the local providers and the assembly stage."""
