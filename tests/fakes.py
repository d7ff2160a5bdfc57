"""Test clip providers: real MP4 outputs, controllable timing and failures, call records."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from activities.providers.base import ClipJob, ClipOutput, Report
from storyreel.contracts import ClipStatus, PredictionPhase, PredictionUpdate
from storyreel.errors import PredictionFailedError, ProviderError, ProviderRefusedError


@dataclass
class CallLog:
    """What a provider saw, shared across worker threads."""

    submits: list[tuple[int, str]] = field(default_factory=list)
    waits: list[tuple[int, str]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    spans: list[tuple[int, float, float]] = field(default_factory=list)
    running: int = 0
    max_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class SleepyProvider:
    """Takes ``seconds`` per clip (heartbeating progress), then returns a prepared real clip."""

    calls_back = False

    def __init__(self, clip: Path, seconds: float, log: CallLog | None = None) -> None:
        self.clip = clip
        self.seconds = seconds
        self.log = log or CallLog()
        self.counter = 0

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:  # noqa: ARG002
        with self.log.lock:
            self.counter += 1
            prediction = f"p-{job.clip_id}-{self.counter}"
            self.log.submits.append((job.clip_id, prediction))
        return prediction

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        with self.log.lock:
            self.log.waits.append((job.clip_id, prediction_id))
            self.log.running += 1
            self.log.max_running = max(self.log.max_running, self.log.running)
        started = time.monotonic()
        try:
            await self.work(prediction_id, job, report)
            output = job.workdir / f"{prediction_id}.mp4"
            shutil.copyfile(self.clip, output)
            return ClipOutput(path=output, predict_time=self.seconds)
        finally:
            with self.log.lock:
                self.log.running -= 1
                self.log.spans.append((job.clip_id, started, time.monotonic()))

    async def work(self, prediction_id: str, job: ClipJob, report: Report) -> None:
        deadline = time.monotonic() + self.seconds
        while (left := deadline - time.monotonic()) > 0:
            report(ClipStatus.rendering, round(100 * (1 - left / self.seconds), 1))
            await asyncio.sleep(min(0.1, left))

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        return PredictionUpdate(prediction_id=prediction_id, phase=PredictionPhase.queued)

    async def cancel(self, prediction_id: str, model: str = "") -> None:  # noqa: ARG002
        with self.log.lock:
            self.log.cancels.append(prediction_id)


class FlakyProvider(SleepyProvider):
    """Clips in ``failing`` raise a provider error on every attempt until ``heal()``."""

    def __init__(self, clip: Path, seconds: float, failing: set[int]) -> None:
        super().__init__(clip, seconds)
        self.failing = set(failing)

    def heal(self) -> None:
        self.failing.clear()

    async def work(self, prediction_id: str, job: ClipJob, report: Report) -> None:
        await super().work(prediction_id, job, report)
        if job.clip_id in self.failing:
            raise PredictionFailedError(f"upstream exploded rendering clip {job.clip_id}")


class DiesOnceProvider(SleepyProvider):
    """The first wait heartbeats, then dies as a crashed worker would; later waits succeed."""

    def __init__(self, clip: Path, seconds: float) -> None:
        super().__init__(clip, seconds)
        self.died = False

    async def work(self, prediction_id: str, job: ClipJob, report: Report) -> None:
        await super().work(prediction_id, job, report)
        with self.log.lock:
            die, self.died = not self.died, True
        if die:
            raise ProviderError("connection lost mid-prediction")


class RefusingProvider(SleepyProvider):
    """Refuses the content of the clips in ``refused`` (a moderation refusal, never retried)."""

    def __init__(self, clip: Path, seconds: float, refused: set[int]) -> None:
        super().__init__(clip, seconds)
        self.refused = set(refused)

    async def work(self, prediction_id: str, job: ClipJob, report: Report) -> None:
        if job.clip_id in self.refused:
            raise ProviderRefusedError(f"clip {job.clip_id} was flagged as sensitive")
        await super().work(prediction_id, job, report)
