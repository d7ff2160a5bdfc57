"""The provider interfaces.

A clip provider works like a prediction API: ``submit`` starts a prediction and names it,
``wait`` follows a named prediction to its output. The split is what lets a retried activity
resume the prediction id it heartbeated instead of paying for a new one.

Providers are async: remote ones poll over HTTP without holding a thread per clip; local ones
run their blocking FFmpeg work on an executor and stop it when cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from storyreel.contracts import ClipStatus, PlatformSpec

Report = Callable[[ClipStatus, float], None]
"""Called (on the event loop) with a status and a percentage (0-100) as a prediction advances."""


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
class ClipOutput:
    """A finished prediction: the file (inside the job's workdir) and what it cost upstream."""

    path: Path
    predict_time: float | None = None
    """Seconds of upstream compute (Replicate's ``metrics.predict_time``), when known."""


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
    async def submit(self, job: ClipJob) -> str:
        """Start a prediction; return its id."""
        ...

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        """Follow the prediction to its end and fetch its output into ``job.workdir``.

        Raises ``PredictionFailedError`` when the prediction itself ended failed (a new one may
        be made), ``ProviderRefusedError`` for content refusals, ``ProviderError`` otherwise.
        """
        ...

    async def cancel(self, prediction_id: str) -> None:
        """Stop a prediction that is no longer wanted (best effort)."""
        ...


class ImageProvider(Protocol):
    async def render(self, job: ImageJob) -> Path:
        """Make the storyboard image; return the file (inside ``job.workdir``)."""
        ...
