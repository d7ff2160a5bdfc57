"""Clip and image providers behind small typed interfaces."""

from activities.providers.base import (
    ClipJob,
    ClipOutput,
    ClipProvider,
    ImageJob,
    ImageProvider,
    Report,
)
from activities.providers.local import LocalClipProvider, LocalImageProvider

__all__ = [
    "ClipJob",
    "ClipOutput",
    "ClipProvider",
    "ImageJob",
    "ImageProvider",
    "LocalClipProvider",
    "LocalImageProvider",
    "Report",
]
