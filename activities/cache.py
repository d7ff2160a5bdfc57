"""Content addressing for the clip and storyboard caches.

A clip is reused only when everything that shapes it is identical: the key is derived from the
``ClipJob`` itself (provider, model, the full prompt, the render parameters, the seed, the exact
bytes of its reference image, and whatever field the job gains), less the fields the job names
as not shaping the clip.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

from activities.providers.base import CACHE_NAME, OMIT_EMPTY, ClipJob
from storyreel.contracts import PlatformSpec


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_digest(**parts: object) -> str:
    """A stable digest of named parts (JSON with sorted keys)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def clip_digest(job: ClipJob) -> str:
    """The clip cache's digest of ``job``: every field of the job (its class's, so a subclass's
    too) but those ``NOT_IN_CACHE_KEY`` names, each under its ``CACHE_NAME`` (or its own name).
    Blocking: reads the reference image."""
    parts = {
        spec.metadata.get(CACHE_NAME, spec.name): _part(getattr(job, spec.name))
        for spec in fields(job)
        if spec.name not in job.NOT_IN_CACHE_KEY
        and not (spec.metadata.get(OMIT_EMPTY) and not getattr(job, spec.name))
    }
    return content_digest(kind="clip", **parts)


def _part(value: object) -> object:
    """A field's value as the key holds it: a file by its bytes, a platform by the frame it
    makes, a length to the millisecond."""
    if isinstance(value, Path):
        return file_digest(value)
    if isinstance(value, tuple):
        return [_part(item) for item in value]
    if isinstance(value, PlatformSpec):
        return [value.width, value.height, value.fps]
    if isinstance(value, float):
        return round(value, 3)
    return value
