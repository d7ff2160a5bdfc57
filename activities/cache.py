"""Content addressing for the clip and storyboard caches.

A clip is reused only when everything that shapes it is identical: provider, model, the full
prompt, the render parameters, the seed and the exact bytes of its reference image.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from storyreel.contracts import PlatformSpec

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_digest(**parts: object) -> str:
    """A stable digest of named parts (JSON with sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def clip_digest(
    *,
    provider: str,
    model: str,
    prompt: str,
    text: str,
    duration: float,
    platform: PlatformSpec,
    seed: int,
    image: Path | None,
    audio: str = "duck",
) -> str:
    return content_digest(
        kind="clip",
        provider=provider,
        model=model,
        prompt=prompt,
        text=text,
        duration=round(duration, 3),
        size=[platform.width, platform.height, platform.fps],
        seed=seed,
        image=file_digest(image) if image is not None else None,
        audio=audio,
    )
