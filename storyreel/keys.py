"""Where each artefact of a generation lives in storage (the workers write, the API serves)."""

from __future__ import annotations

# The top-level storage prefixes of generated media; nothing a caller uploads lives under them.
GENERATIONS_PREFIX = "generations"
CACHE_PREFIX = "cache"
GENERATED_PREFIXES = frozenset({GENERATIONS_PREFIX, CACHE_PREFIX})


def storyboard_key(generation_id: str, index: int) -> str:
    return f"{GENERATIONS_PREFIX}/{generation_id}/storyboard/{index:03d}.png"


def clip_key(generation_id: str, clip_id: int) -> str:
    return f"{GENERATIONS_PREFIX}/{generation_id}/clips/{clip_id:03d}.mp4"


def video_key(generation_id: str) -> str:
    return f"{GENERATIONS_PREFIX}/{generation_id}/video.mp4"


def thumbnail_key(generation_id: str) -> str:
    return f"{GENERATIONS_PREFIX}/{generation_id}/thumbnail.jpg"


def record_key(generation_id: str) -> str:
    return f"{GENERATIONS_PREFIX}/{generation_id}/generation.json"


def clip_cache_key(digest: str) -> str:
    """Content-addressed clips: the digest covers everything that shapes the output."""
    return f"{CACHE_PREFIX}/clips/{digest[:2]}/{digest}.mp4"


def image_cache_key(digest: str) -> str:
    return f"{CACHE_PREFIX}/storyboard/{digest[:2]}/{digest}.png"
