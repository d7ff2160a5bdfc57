"""The provider interfaces.

A clip provider works like a prediction API: ``submit`` starts a prediction and names it,
``wait`` follows a named prediction to its output. The split is what lets a retried activity
resume the prediction id it heartbeated instead of paying for a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storyreel.contracts import ClipStatus, PlatformSpec

Report = Callable[[ClipStatus, float], None]
"""Called with a status and a percentage (0-100) as the prediction advances."""


@dataclass(frozen=True)
class ClipJob:
    generation_id: str
    clip_id: int
    prompt: str
    text: str
    duration: float
    platform: PlatformSpec
    model: str
    seed: int
    image: Path | None
    workdir: Path


@dataclass(frozen=True)
class ImageJob:
    generation_id: str
    index: int
    prompt: str
    platform: PlatformSpec
    model: str
    seed: int
    workdir: Path


class ClipProvider(Protocol):
    def submit(self, job: ClipJob) -> str:
        """Start a prediction; return its id."""
        ...

    def wait(self, prediction_id: str, job: ClipJob, report: Report) -> Path:
        """Follow the prediction to its end; return the output file (inside ``job.workdir``)."""
        ...

    def cancel(self, prediction_id: str) -> None:
        """Stop a prediction that is no longer wanted (best effort)."""
        ...


class ImageProvider(Protocol):
    def render(self, job: ImageJob) -> Path:
        """Make the storyboard image; return the file (inside ``job.workdir``)."""
        ...
