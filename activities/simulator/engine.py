"""The simulator's engine: its knobs, the prediction state machine and the request log.

Every prediction is an asyncio task on the server's event loop, so its status and tqdm logs
advance with time whether or not anyone polls. Rendering (FFmpeg) runs on a thread pool with a
stop flag, so a cancel kills FFmpeg and the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import os
import random
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from activities.providers.base import ClipJob, ImageJob
from activities.providers.local import LocalClipProvider, LocalImageProvider, run_stoppable
from activities.simulator.schemas import DEFAULT_SECONDS, ModelSchema, seconds
from activities.simulator.webhooks import WEBHOOK_EVENTS, Deliveries
from storyreel.contracts import ClipStatus, PlatformSpec
from storyreel.errors import MediaError
from storyreel.webhooks.replicate import new_secret

logger = logging.getLogger(__name__)

REFUSAL = (
    "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
)
FAILURE = "Prediction failed: the model crashed while generating (simulated)."
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
ASPECTS = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)}
STEPS = 100
BAR = " ▏▎▍▌▋▊▉"
# Replicate keeps a prediction in ``starting`` while it finds a machine; we keep it short.
MAX_STARTING = 0.5
# Prompt triggers, honoured on every protocol:
#   [refuse]        fails with the provider's content-policy refusal (never worth a retry)
#   [refuse:fal]    refuses on that protocol only (``replicate``, ``fal``), so a fallback succeeds
#   [fail]          fails as a crashed model would; [fail-once] only the first prediction of
#                   that prompt, a retry (a new prediction of the same prompt) succeeds
#   [hang]          stays processing forever (logs freeze halfway) until canceled
#   [corrupt]       succeeds, but the output is not a playable file (a few bytes that are no
#                   MP4 or PNG); [corrupt-once] only for the first prediction of that prompt
# Triggers are cut out of the text drawn on the rendered clip.
_TRIGGERS = re.compile(r"\[(refuse|refuse:[a-z]+|fail-once|fail|hang|corrupt-once|corrupt)\]")
# Values longer than this are shortened in the log (image fields carry whole data URIs).
LOG_VALUE_CHARS = 80


class SimulatorConfig(BaseModel):
    """The simulator's knobs; each can be changed at run time through ``POST /_sim/config``.

    The three outcome rates are drawn from one roll, checked in the order hang, refuse, fail.
    """

    model_config = ConfigDict(extra="forbid")

    latency: float = Field(10.0, ge=0, description="seconds a prediction takes")
    jitter: float = Field(0.0, ge=0, description="± seconds added to latency, uniform")
    fail_rate: float = Field(0.0, ge=0, le=1)
    refuse_rate: float = Field(0.0, ge=0, le=1)
    hang_rate: float = Field(0.0, ge=0, le=1)
    error_rate: float = Field(0.0, ge=0, le=1, description="API requests answered 5xx")
    malformed_rate: float = Field(0.0, ge=0, le=1, description="GETs answered invalid JSON")
    rate_limit: int | None = Field(None, ge=1, description="prediction creates per minute")
    rate_window: float = Field(
        60.0, gt=0, description="the rate limit's sliding window in seconds (short ones for tests)"
    )
    seed: int | None = None
    render: bool = Field(True, description="real FFmpeg renders; false serves a tiny file")
    webhook_secret: str | None = Field(
        None, description="whsec_ secret deliveries are signed with; a fresh one if unset"
    )
    webhook_logs_interval: float = Field(
        5.0, gt=0, description="least seconds between two 'logs' deliveries of one prediction"
    )
    webhook_drop_rate: float = Field(0.0, ge=0, le=1, description="deliveries never sent")
    webhook_duplicate_rate: float = Field(0.0, ge=0, le=1, description="deliveries sent twice")
    create_delay: float = Field(
        0.0, ge=0, description="seconds a create is answered late (deliveries may come first)"
    )
    data_dir: Path | None = Field(None, description="where outputs go; a temp dir if unset")

    def updated(self, patch: dict[str, Any]) -> SimulatorConfig:
        return SimulatorConfig.model_validate({**self.model_dump(), **patch})


class Fate(StrEnum):
    """How a prediction will end; a hung one freezes its logs halfway and never ends."""

    succeed = "succeed"
    fail = "fail"
    refuse = "refuse"
    hang = "hang"


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


class Simulator:
    """The predictions, their tasks, the rate-limit window and the log of one server."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.counts = Counts()
        self._predictions: dict[str, Prediction] = {}
        self._failed_once: set[str] = set()
        self._corrupted_once: set[str] = set()
        self._versions: dict[str, str] = {}
        self._window: deque[float] = deque()
        self._tmp = Path(tempfile.mkdtemp(prefix="storyreel-sim-"))
        self._prepared: dict[tuple[bool, float], Path] = {}
        self._prepare_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max(2, os.cpu_count() or 2), "sim-render")
        self._clips = LocalClipProvider()
        self._images = LocalImageProvider()
        self.webhook_secret = config.webhook_secret or new_secret()
        self.deliveries = Deliveries(self)
        self._reseed()

    def _reseed(self) -> None:
        # Two streams: how often clients poll (fault rolls) must not change prediction fates.
        seed = self.config.seed
        self._fates = random.Random(None if seed is None else f"{seed}:fates")
        self._faults = random.Random(None if seed is None else f"{seed}:faults")
        self.fault_rolls = random.Random(None if seed is None else f"{seed}:webhooks")

    def configure(self, patch: dict[str, Any]) -> SimulatorConfig:
        self.config = self.config.updated(patch)
        if "seed" in patch:
            self._reseed()
        return self.config

    @property
    def outputs(self) -> Path:
        return self.config.data_dir or self._tmp

    # -- faults ------------------------------------------------------------------------------

    def roll_error(self) -> int | None:
        if self._faults.random() < self.config.error_rate:
            return self._faults.choice((500, 502, 503))
        return None

    def roll_malformed(self) -> bool:
        malformed = self._faults.random() < self.config.malformed_rate
        self.counts.malformed += malformed
        return malformed

    def admit_create(self) -> Admission:
        """Replicate's create limit: a sliding 60 s window, 429 with ``Retry-After`` beyond."""
        limit = self.config.rate_limit
        if limit is None:
            return Admission(True, {})
        now = time.monotonic()
        while self._window and self._window[0] <= now - self.config.rate_window:
            self._window.popleft()
        allowed = len(self._window) < limit
        if allowed:
            self._window.append(now)
        else:
            self.counts.rate_limited += 1
        reset = (
            max(1, math.ceil(self._window[0] + self.config.rate_window - now))
            if self._window
            else 1
        )
        headers = {
            "ratelimit-remaining": str(limit - len(self._window)),
            "ratelimit-reset": str(reset),
        }
        if not allowed:
            headers["Retry-After"] = str(reset)
        return Admission(allowed, headers)

    # -- predictions -------------------------------------------------------------------------

    def _fate(self, prompt: str, protocol: str) -> Fate:
        # ``[refuse:fal]`` refuses on one protocol only, so a fallback to another can succeed.
        if "[refuse]" in prompt or f"[refuse:{protocol}]" in prompt:
            return Fate.refuse
        if "[hang]" in prompt:
            return Fate.hang
        if "[fail-once]" in prompt:
            if prompt in self._failed_once:
                return Fate.succeed
            self._failed_once.add(prompt)
            return Fate.fail
        if "[fail]" in prompt:
            return Fate.fail
        roll, config = self._fates.random(), self.config
        if roll < config.hang_rate:
            return Fate.hang
        if roll < config.hang_rate + config.refuse_rate:
            return Fate.refuse
        if roll < config.hang_rate + config.refuse_rate + config.fail_rate:
            return Fate.fail
        return Fate.succeed

    def create(
        self,
        model: str,
        version: str,
        input: dict[str, Any],
        base_url: str,
        cancel_after: float | None = None,
        webhook: str | None = None,
        webhook_events: frozenset[str] = WEBHOOK_EVENTS,
        protocol: str = "replicate",
        schema: ModelSchema | None = None,
    ) -> Prediction:
        """Start a prediction; ``schema`` (already validated against) says what the model takes."""
        prompt = str(input.get("prompt", ""))
        fate = self._fate(prompt, protocol)
        jitter = self._fates.uniform(-self.config.jitter, self.config.jitter)
        ident = base64.b32encode(uuid.uuid4().bytes).decode().rstrip("=").lower()
        prediction = Prediction(
            ident, model, version, input, fate, max(0.0, self.config.latency + jitter), base_url
        )
        prediction.webhook, prediction.webhook_events = webhook, webhook_events
        prediction.schema, prediction.protocol = schema, protocol
        prediction.unknown_inputs = [] if schema is None else schema.unknown(input)
        prediction.corrupt = self._corrupt(prompt)
        self._predictions[ident] = prediction
        self.remember(model, version)
        self.counts.creates += 1
        prediction.task = asyncio.create_task(self._run(prediction), name=f"sim-{ident}")
        if cancel_after is not None:
            prediction.deadline = asyncio.get_running_loop().call_later(
                cancel_after, self._expire, prediction
            )
        return prediction

    def _corrupt(self, prompt: str) -> bool:
        if "[corrupt-once]" in prompt:
            first = prompt not in self._corrupted_once
            self._corrupted_once.add(prompt)
            return first
        return "[corrupt]" in prompt

    def remember(self, model: str, version: str) -> None:
        """Note which model a version id belongs to, so creates by bare version id resolve."""
        self._versions[version] = model

    def model_of(self, version: str) -> str | None:
        return self._versions.get(version)

    def get(self, prediction_id: str) -> Prediction | None:
        return self._predictions.get(prediction_id)

    def newest_first(self) -> list[Prediction]:
        return list(reversed(self._predictions.values()))

    def cancel(self, prediction_id: str) -> Prediction | None:
        prediction = self._predictions.get(prediction_id)
        if prediction is not None:
            self.counts.cancels += 1
            self._stop(prediction, "canceled")
        return prediction

    async def wait(self, prediction: Prediction, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(prediction.done.wait(), seconds)

    def output_file(self, name: str) -> Path | None:
        prediction = self._predictions.get(name.split(".", 1)[0])
        return None if prediction is None or prediction.output is None else prediction.path

    def records_log(self, records: Mapping[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """A protocol's records of what each request carried (by prediction id), oldest
        first, each with where its prediction stands; a reset forgets them."""
        return [
            {**record, "status": prediction.status}
            for prediction_id, record in records.items()
            if (prediction := self.get(prediction_id)) is not None
        ]

    def log(self) -> dict[str, Any]:
        entries = [
            {
                "id": p.id,
                "model": p.model,
                "prompt": p.prompt,
                "created_at": iso(p.created_at),
                "status": p.status,
                "canceled": p.canceled,
                "gets": p.gets,
                "protocol": p.protocol,
                "inputs": {key: _shortened(value) for key, value in p.input.items()},
                "unknown_inputs": p.unknown_inputs,
                "schema": p.schema is not None,
                "seconds": p.seconds,
                "corrupt": p.corrupt,
            }
            for p in self._predictions.values()
        ]
        return {"predictions": entries, "counts": asdict(self.counts)}

    async def reset(self) -> None:
        await self._stop_all()
        for prediction in self._predictions.values():
            shutil.rmtree(self.outputs / prediction.id, ignore_errors=True)
        self._predictions.clear()
        self._failed_once.clear()
        self._corrupted_once.clear()
        self._window.clear()
        self.counts = Counts()
        self._reseed()

    async def close(self) -> None:
        await self._stop_all()
        await self.deliveries.close()
        self._executor.shutdown(wait=True)
        shutil.rmtree(self._tmp, ignore_errors=True)

    async def _stop_all(self) -> None:
        tasks = [p.task for p in self._predictions.values() if p.task is not None]
        for prediction in self._predictions.values():
            self._finish(prediction, "canceled")  # releases any ``Prefer: wait`` still holding
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the state machine -------------------------------------------------------------------

    def _expire(self, prediction: Prediction) -> None:
        # ``Cancel-After``: one that never got a machine is aborted, a running one canceled.
        self._stop(prediction, "aborted" if prediction.status == "starting" else "canceled")

    def _stop(self, prediction: Prediction, status: str) -> None:
        if prediction.terminal:
            return
        prediction.canceled = True
        self._finish(prediction, status)
        if prediction.task is not None:
            prediction.task.cancel()  # its render stops with it (``run_stoppable``)

    def _finish(self, prediction: Prediction, status: str, error: str | None = None) -> None:
        if prediction.terminal:
            return
        prediction.status, prediction.error = status, error
        prediction.completed_at = datetime.now(UTC)
        if prediction.deadline is not None:
            prediction.deadline.cancel()
        prediction.done.set()
        self.deliveries.notify(prediction, "completed")

    def _advance(self, prediction: Prediction, fraction: float, elapsed: float) -> None:
        step = int(min(1.0, fraction) * STEPS)
        if step > prediction.step:
            prediction.step = step
            prediction.logs.append(tqdm_line(step, elapsed))
            self.deliveries.notify(prediction, "logs")

    async def _run(self, prediction: Prediction) -> None:
        loop = asyncio.get_running_loop()
        render: asyncio.Task[Path] | None = None
        try:
            await asyncio.sleep(min(MAX_STARTING, prediction.duration * 0.1))
            prediction.status, prediction.started_at = "processing", datetime.now(UTC)
            seed = prediction.input.get("seed", "random")
            prediction.logs += [f"Using seed: {seed}", f"Prompt: {prediction.prompt}"]
            self.deliveries.notify(prediction, "start")
            if prediction.fate is Fate.succeed:
                render = asyncio.create_task(self._render(prediction))
            # Logs stop short of 100 % until the output exists; a hang freezes halfway.
            ceiling = 0.5 if prediction.fate is Fate.hang else 0.99
            tick = min(0.5, max(0.1, prediction.duration / 50))
            start = loop.time()
            while True:
                elapsed = loop.time() - start
                fraction = elapsed / prediction.duration if prediction.duration > 0 else 1.0
                self._advance(prediction, min(fraction, ceiling), elapsed)
                if prediction.fate is Fate.hang and fraction >= ceiling:
                    await loop.create_future()  # processing forever, until canceled
                if fraction >= 1.0:
                    break
                await asyncio.sleep(min(tick, prediction.duration - elapsed))
            if prediction.fate is not Fate.succeed or render is None:
                error = REFUSAL if prediction.fate is Fate.refuse else FAILURE
                self._finish(prediction, "failed", error)
                return
            prediction.path = await render
            self._advance(prediction, 1.0, loop.time() - start)
            prediction.output = (
                f"{prediction.base_url}files/{prediction.id}{prediction.path.suffix}"
            )
            self._finish(prediction, "succeeded")
        except MediaError as error:
            self._finish(prediction, "failed", f"Prediction failed: {error}")
        except Exception as error:
            logger.exception("simulated prediction %s broke", prediction.id)
            self._finish(prediction, "failed", f"Prediction failed: {error!r}")
        finally:
            if render is not None and not render.done():
                render.cancel()
                await asyncio.gather(render, return_exceptions=True)

    async def _render(self, prediction: Prediction) -> Path:
        if prediction.corrupt:
            return self._corrupt_file(prediction)
        if not self.config.render:
            seconds = prediction.seconds or DEFAULT_SECONDS
            return await self._prepared_file(prediction.is_image, seconds)
        # A model without an aspect ratio input (Kling image-to-video) follows its first frame.
        ratio = prediction.input.get("aspect_ratio") or image_aspect(prediction.input)
        width, height = ASPECTS.get(str(ratio), ASPECTS["16:9"])
        spec = PlatformSpec(width=width, height=height)
        workdir = self.outputs / prediction.id
        workdir.mkdir(parents=True, exist_ok=True)
        seed = prediction.input.get("seed")
        if not isinstance(seed, int):
            seed = int(hashlib.sha256(prediction.prompt.encode()).hexdigest()[:8], 16)
        text = _TRIGGERS.sub("", prediction.prompt).strip() or prediction.model
        if prediction.is_image:
            image = ImageJob(prediction.id, 0, text, spec, prediction.model, seed, workdir)
            return await run_stoppable(self._executor, lambda _: self._images.render_sync(image))
        duration = prediction.seconds or DEFAULT_SECONDS
        clip = ClipJob("sim", 1, text, text, duration, spec, prediction.model, seed, None, workdir)
        return await run_stoppable(
            self._executor, lambda stop: self._clips.render(prediction.id, clip, _quiet, stop)
        )

    def _corrupt_file(self, prediction: Prediction) -> Path:
        """An output no player opens: 64 bytes derived from the id, under the usual name."""
        workdir = self.outputs / prediction.id
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"{prediction.id}{'.png' if prediction.is_image else '.mp4'}"
        path.write_bytes(hashlib.sha256(prediction.id.encode()).digest() * 2)
        return path

    async def _prepared_file(self, image: bool, seconds: float) -> Path:
        """One tiny image, or one tiny clip per length, rendered on first use and served for
        every prediction (a clip lasts what the model makes: storyreel checks outputs)."""
        key = (image, 0.0 if image else round(seconds, 3))
        async with self._prepare_lock:
            if key not in self._prepared:
                workdir = self._tmp / f"prepared-{key[1]:g}"
                workdir.mkdir(exist_ok=True)
                spec = PlatformSpec(width=320, height=180, fps=10)
                image_job = ImageJob("sim", 0, "simulated", spec, "sim", 1, workdir)
                clip_job = ClipJob(
                    "sim", 1, "sim", "simulated", key[1], spec, "sim", 1, None, workdir
                )

                def work(stop: threading.Event) -> Path:
                    if image:
                        return self._images.render_sync(image_job)
                    return self._clips.render("prepared", clip_job, _quiet, stop)

                self._prepared[key] = await run_stoppable(self._executor, work)
            return self._prepared[key]


def _shortened(value: Any) -> Any:
    """An input value as the log shows it: a data URI as its media type and size."""
    if not isinstance(value, str) or len(value) <= LOG_VALUE_CHARS:
        return value
    if value.startswith("data:"):
        return f"{value.split(',', 1)[0]},… ({len(value)} chars)"
    return f"{value[:LOG_VALUE_CHARS]}… ({len(value)} chars)"


def _quiet(_status: ClipStatus, _percent: float) -> None:
    """Render progress is ignored: the simulator's logs follow the clock, not FFmpeg."""


def png_size(data: bytes | None) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, if ``data`` is a PNG."""
    if data is None or len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def nearest_aspect(width: int, height: int) -> str:
    """The simulator's aspect ratio closest to ``width`` x ``height``."""
    wanted = width / height if height else 1.0
    return min(ASPECTS, key=lambda name: abs(ASPECTS[name][0] / ASPECTS[name][1] - wanted))


def image_aspect(inputs: dict[str, Any]) -> str | None:
    """The aspect ratio of the first PNG sent inline among ``inputs`` (a first frame)."""
    for value in inputs.values():
        if isinstance(value, str) and value.startswith("data:image/png;base64,"):
            try:
                size = png_size(base64.b64decode(value.split(",", 1)[1][:64]))
            except ValueError:
                continue
            if size is not None:
                return nearest_aspect(*size)
    return None


def simulator_of(request: Request) -> Simulator:
    """The simulator serving ``request`` (every protocol's routes share it; also a FastAPI
    dependency, so ``Request`` is imported at run time)."""
    simulator: Simulator = request.app.state.simulator
    return simulator
