"""The simulator's engine: its knobs, the faults it rolls, the prediction state machine and
the request log.

Every prediction is an asyncio task on the server's event loop, so its status and tqdm logs
advance with time whether or not anyone polls. A prediction as Replicate shapes it is in
``prediction``; how its output is made (FFmpeg on a thread pool, stopped by a cancel) in
``render``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import random
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from activities.simulator.prediction import (
    FAILURE,
    REFUSAL,
    STEPS,
    Admission,
    Counts,
    Fate,
    Prediction,
    iso,
    tqdm_line,
)
from activities.simulator.render import Renderer
from activities.simulator.schemas import ModelSchema
from activities.simulator.webhooks import WEBHOOK_EVENTS, Deliveries
from storyreel.errors import MediaError
from storyreel.webhooks.replicate import new_secret

logger = logging.getLogger(__name__)

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
# Triggers are cut out of the text drawn on the rendered clip (``render``).
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
        self._renderer = Renderer(self._tmp)
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
        self._renderer.close()
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
                render = asyncio.create_task(
                    self._renderer.render(prediction, self.outputs, self.config.render)
                )
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


def _shortened(value: Any) -> Any:
    """An input value as the log shows it: a data URI as its media type, size and the SHA-256
    of what it holds (so a test can tell which picture was sent); lists item by item."""
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    if not isinstance(value, str) or len(value) <= LOG_VALUE_CHARS:
        return value
    if value.startswith("data:"):
        head, _, data = value.partition(",")
        try:
            digest = hashlib.sha256(base64.b64decode(data, validate=True)).hexdigest()
        except ValueError:
            digest = "undecodable"
        return f"{head},… ({len(value)} chars, sha256 {digest})"
    return f"{value[:LOG_VALUE_CHARS]}… ({len(value)} chars)"


def simulator_of(request: Request) -> Simulator:
    """The simulator serving ``request`` (every protocol's routes share it; also a FastAPI
    dependency, so ``Request`` is imported at run time)."""
    simulator: Simulator = request.app.state.simulator
    return simulator


_State = TypeVar("_State")


def protocol_state(request: Request, name: str, new: Callable[[], _State]) -> _State:
    """What one protocol's routes keep of their own on the app (``app.state.<name>``), made
    with ``new`` on first use."""
    state: _State | None = getattr(request.app.state, name, None)
    if state is None:
        state = new()
        setattr(request.app.state, name, state)
    return state
