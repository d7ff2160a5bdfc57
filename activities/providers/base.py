"""The provider interfaces.

A clip provider works like a prediction API: ``submit`` starts a prediction and names it,
``wait`` follows a named prediction to its output. The split is what lets a retried activity
resume the prediction id it heartbeated instead of paying for a new one.

With webhooks (``STORYREEL_PUBLIC_URL`` set) ``submit`` is given the URL the provider calls
back; a provider that cannot call back ignores it and says so (``calls_back``), and its clips
are polled as before. ``check`` is one status read: the slow fallback poll of a clip whose
webhook may have been lost. A prediction id is opaque to everyone but its provider, travels in
heartbeats and workflow history (so it carries no secret) and is what a webhook names.

Providers are async: remote ones poll over HTTP without holding a thread per clip; local ones
run their blocking FFmpeg work on an executor and stop it when cancelled.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from storyreel.catalogue import ModelSpec
from storyreel.contracts import ClipAudio, ClipStatus, PlatformSpec, PredictionUpdate

Report = Callable[[ClipStatus, float], None]
"""Called (on the event loop) with a status and a percentage (0-100) as a prediction advances."""


def rising(report: Report) -> Report:
    """``report`` whose percent never goes back: a model may print several progress bars in a
    row, and a poll may land between two of them."""
    highest = 0.0

    def forward(status: ClipStatus, percent: float) -> None:
        nonlocal highest
        highest = max(highest, percent)
        report(status, highest)

    return forward


# The name a ClipJob field goes by in the clip cache key, where it is not its own (the names
# of the keys written before the key was derived from the job, kept so those still hit).
CACHE_NAME = "cache_name"
# A ClipJob field left out of the key while it is empty (fields added later: keys of jobs
# without them are the keys they always were).
OMIT_EMPTY = "omit_empty"


@dataclass(frozen=True)
class ClipJob:
    """One clip to make. Its fields are also the clip cache's key (``activities.cache``):
    every field is in it unless ``NOT_IN_CACHE_KEY`` names it, so a new field that changes
    the clip changes the key by construction."""

    NOT_IN_CACHE_KEY: ClassVar[frozenset[str]] = frozenset(
        {
            # Which clip and where it is made, not what it is.
            "generation_id",
            "clip_id",
            "workdir",
            # Functions of fields that are in the key: the spec of (provider, model), looked
            # up by the worker; the sound switch of clip_audio.
            "spec",
            "audio",
        }
    )

    generation_id: str
    clip_id: int
    prompt: str
    text: str
    duration: float
    platform: PlatformSpec = field(metadata={CACHE_NAME: "size"})
    model: str
    seed: int
    image: Path | None
    workdir: Path
    spec: ModelSpec | None = None
    """What the model takes and makes (the catalogue's entry, or read from the provider's
    published schema); None: a provider without per-model facts (local)."""
    audio: bool = True
    """Whether the model's own sound is wanted (False: ask for none where it is a switch)."""
    provider: str = ""
    """The provider that makes it (empty where nobody needs to know: a provider's own tests)."""
    clip_audio: ClipAudio = field(default="duck", metadata={CACHE_NAME: "audio"})
    """What the finished clip does with the model's sound (``ClipInput.clip_audio``)."""
    draft: bool = field(default=False, metadata={OMIT_EMPTY: True})
    """A draft: at the model's cheapest setting (its lowest resolution)."""
    references: tuple[Path, ...] = field(default=(), metadata={OMIT_EMPTY: True})
    """The scene's characters' reference images (keyed by their bytes): sent to a model that
    takes reference images."""

    def clip_seconds(self) -> float:
        """The clip length to ask for: the shortest the model makes that covers the scene."""
        if self.spec is None:
            return self.duration
        return self.spec.durations.covering(self.duration)

    def output_path(self, prediction_id: str) -> Path:
        """Where a prediction's video is copied to: in the workdir, named after the prediction.
        Ids come from the network and back from heartbeats: none may name a path elsewhere."""
        return self.workdir / f"{re.sub(r'[^A-Za-z0-9_-]', '_', prediction_id)}.mp4"


@dataclass(frozen=True)
class ClipOutput:
    """A finished prediction: the file (inside the job's workdir) and what it cost upstream."""

    path: Path
    predict_time: float | None = None
    """Seconds of upstream compute (Replicate's ``metrics.predict_time``), when known."""
    cost: float | None = None
    """What the provider itself says the prediction cost (Runware's ``cost``); it wins over
    the price table."""


@dataclass(frozen=True)
class ImageJob:
    generation_id: str
    index: int
    prompt: str
    platform: PlatformSpec
    model: str
    seed: int
    workdir: Path
    # The scene's characters' reference images: a provider that takes references sends them,
    # the local one draws the first into the picture.
    references: tuple[Path, ...] = ()


class ClipProvider(Protocol):
    calls_back: bool
    """Whether ``submit`` registers the webhook it is given (False: polled to the end)."""

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:
        """Start a prediction (calling ``webhook_url`` back when it can); return its id."""
        ...

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:
        """One read of where a prediction stands (no waiting, no download)."""
        ...

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        """Follow the prediction to its end and fetch its output into ``job.workdir``.

        Raises ``PredictionFailedError`` when the prediction itself ended failed (a new one may
        be made), ``ProviderRefusedError`` for content refusals, ``ProviderError`` otherwise.
        """
        ...

    async def cancel(self, prediction_id: str, model: str) -> None:
        """Stop a prediction that is no longer wanted (best effort, never raises)."""
        ...


class ImageProvider(Protocol):
    # Whether the picture shows ``job.references`` (a provider without the attribute: no).
    takes_references: bool

    async def render(self, job: ImageJob) -> Path:
        """Make the storyboard image; return the file (inside ``job.workdir``)."""
        ...


@runtime_checkable
class DescribesModels(Protocol):
    """A provider that can read a model's published input schema (Replicate, fal)."""

    async def describe(self, model: str) -> ModelSpec:
        """``model`` as its provider publishes it; ``ProviderError`` when it cannot be read."""
        ...
