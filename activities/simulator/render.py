"""How the simulator makes a prediction's output: a real FFmpeg render of the prompt (the
local providers' own), one tiny prepared file per length, or a corrupt one on request.

Rendering runs on a thread pool with a stop flag, so a cancel kills FFmpeg and the event loop
never blocks.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from activities.providers.base import ClipJob, ImageJob
from activities.providers.local import LocalClipProvider, LocalImageProvider, run_stoppable
from activities.simulator.prediction import Prediction
from activities.simulator.schemas import DEFAULT_SECONDS
from storyreel.contracts import ClipStatus, PlatformSpec

ASPECTS = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)}
# The prompt triggers (see ``engine``) are cut out of the text drawn on the rendered clip.
_TRIGGERS = re.compile(r"\[(refuse|refuse:[a-z]+|fail-once|fail|hang|corrupt-once|corrupt)\]")


class Renderer:
    """The render pool and the prepared files of one simulator (``tmp`` is its scratch dir)."""

    def __init__(self, tmp: Path) -> None:
        self._tmp = tmp
        self._prepared: dict[tuple[bool, float], Path] = {}
        self._prepare_lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max(2, os.cpu_count() or 2), "sim-render")
        # A model encodes as it likes; the fastest preset that stays H.264 High keeps the
        # simulator's CPU for the system under test (its clips still go through conform).
        self._clips = LocalClipProvider(preset="ultrafast")
        self._images = LocalImageProvider()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def render(self, prediction: Prediction, outputs: Path, full: bool) -> Path:
        """The prediction's output file: rendered for it (``full``), or a prepared one."""
        if prediction.corrupt:
            return self._corrupt_file(prediction, outputs)
        if not full:
            seconds = prediction.seconds or DEFAULT_SECONDS
            return await self._prepared_file(prediction.is_image, seconds)
        # A model without an aspect ratio input (Kling image-to-video) follows its first frame.
        ratio = prediction.input.get("aspect_ratio") or image_aspect(prediction.input)
        width, height = ASPECTS.get(str(ratio), ASPECTS["16:9"])
        spec = PlatformSpec(width=width, height=height)
        workdir = outputs / prediction.id
        workdir.mkdir(parents=True, exist_ok=True)
        seed = prediction.input.get("seed")
        if not isinstance(seed, int):
            seed = int(hashlib.sha256(prediction.prompt.encode()).hexdigest()[:8], 16)
        text = _TRIGGERS.sub("", prediction.prompt).strip() or prediction.model
        if prediction.is_image:
            image = ImageJob(prediction.id, 0, text, spec, prediction.model, seed, workdir)
            return await run_stoppable(self._executor, lambda _: self._images.render_sync(image))
        duration = prediction.seconds or DEFAULT_SECONDS
        # Video models make 720p by default (Kling, Veo, Hailuo): storyreel scales their clips.
        spec = PlatformSpec(width=width * 2 // 3, height=height * 2 // 3)
        clip = ClipJob("sim", 1, text, text, duration, spec, prediction.model, seed, None, workdir)
        return await run_stoppable(
            self._executor, lambda stop: self._clips.render(prediction.id, clip, _quiet, stop)
        )

    def _corrupt_file(self, prediction: Prediction, outputs: Path) -> Path:
        """An output no player opens: 64 bytes derived from the id, under the usual name."""
        workdir = outputs / prediction.id
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
