"""A simulated prediction as Replicate shapes it, its fate, and the server's counters."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum, auto
from pathlib import Path
from typing import Any

from activities.simulator.schemas import DEFAULT_SECONDS, ModelSchema, seconds

REFUSAL = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
FAILURE = "Prediction failed: the model crashed while generating (simulated)."
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
STEPS = 100
BAR = " ▏▎▍▌▋▊▉"


class Fate(StrEnum):
    """How a prediction will end; a hung one freezes its logs halfway and never ends."""

    succeed = auto()
    fail = auto()
    refuse = auto()
    hang = auto()


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def version_of(model: str) -> str:
    """A stable 64-hex version id per model, shaped like Replicate's."""
    return hashlib.sha256(model.encode()).hexdigest()


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes:02d}:{rest:02d}"


def tqdm_line(step: int, elapsed: float) -> str:
    """One progress line as tqdm prints it, e.g. `` 45%|████▌     | 45/100 [00:04<00:05, ...]``."""
    cells = step / STEPS * 10
    bar = "█" * int(cells)
    if (partial := int((cells - int(cells)) * 8)) and len(bar) < 10:
        bar += BAR[partial]
    if step == 0 or elapsed <= 0:
        timing = f"{_clock(elapsed)}<?, ?it/s"
    else:
        rate = step / elapsed
        timing = f"{_clock(elapsed)}<{_clock((STEPS - step) / rate)}, {rate:.2f}it/s"
    return f"{step * 100 // STEPS:3d}%|{bar:<10}| {step}/{STEPS} [{timing}]"


@dataclass(eq=False)
class Prediction:
    """One simulated prediction; ``task`` drives it from ``starting`` to an end."""

    id: str
    model: str
    version: str
    input: dict[str, Any]
    fate: Fate
    duration: float
    base_url: str
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "starting"
    logs: list[str] = field(default_factory=list)
    output: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    canceled: bool = False
    path: Path | None = None
    step: int = -1
    done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    deadline: asyncio.TimerHandle | None = None
    webhook: str | None = None
    webhook_events: frozenset[str] = frozenset()
    gets: int = 0
    logs_sent_at: float | None = None
    schema: ModelSchema | None = None
    unknown_inputs: list[str] = field(default_factory=list)
    """Input keys the model's stored schema does not take: ignored, as the real service does."""
    corrupt: bool = False
    protocol: str = "replicate"

    @property
    def prompt(self) -> str:
        return str(self.input.get("prompt", ""))

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def seconds(self) -> float | None:
        """The clip length the model makes: its ``duration`` input (``5``, ``"5"``, ``"5s"``),
        else its schema's default, else 5 s; None for an image."""
        if self.is_image:
            return None
        asked = seconds(self.input.get("duration"))
        if asked is None and self.schema is not None:
            asked = self.schema.default_seconds()
        return DEFAULT_SECONDS if asked is None else min(20.0, max(1.0, asked))

    @property
    def is_image(self) -> bool:
        if self.schema is not None:
            return not self.schema.makes_video
        name = self.model.rsplit("/", 1)[-1].lower()
        if "video" in name:
            return False  # image-to-video endpoints (fal's ``.../image-to-video``) make videos
        guessed = "duration" not in self.input and ("flux" in name or "sdxl" in name)
        return "image" in name or guessed

    def to_json(self, waited_out: bool = False) -> dict[str, Any]:
        """The prediction object exactly as Replicate shapes it."""
        metrics: dict[str, float] = {}
        if self.completed_at is not None:
            metrics["total_time"] = (self.completed_at - self.created_at).total_seconds()
            if self.started_at is not None:
                metrics["predict_time"] = (self.completed_at - self.started_at).total_seconds()
        get = f"{self.base_url}v1/predictions/{self.id}"
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "input": self.input,
            "logs": "\n".join(self.logs) + ("\n" if self.logs else ""),
            "output": self.output,
            "error": self.error,
            # A sync (``Prefer: wait``) answer that ran out of time says ``starting`` whatever
            # the real state, as Replicate does; the official client relies on it to poll on.
            "status": "starting" if waited_out and not self.terminal else self.status,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "completed_at": iso(self.completed_at),
            "metrics": metrics,
            "urls": {"get": get, "cancel": f"{get}/cancel"},
        }


@dataclass
class Counts:
    creates: int = 0
    cancels: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    malformed: int = 0
    gets: int = 0
    webhooks_sent: int = 0
    webhooks_failed: int = 0
    webhooks_dropped: int = 0
    webhooks_duplicated: int = 0


@dataclass(frozen=True)
class Admission:
    """The rate limiter's answer to one create: allowed or not, and the headers to send."""

    allowed: bool
    headers: dict[str, str]
