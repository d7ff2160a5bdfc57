"""The embedded providers: real images and H.264 clips rendered by FFmpeg, no account needed."""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import textwrap
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from activities.media import ffmpeg
from activities.media.pan import pan_still
from activities.providers.base import ClipJob, ClipOutput, ImageJob, Report
from storyreel.contracts import ClipStatus, PredictionPhase, PredictionUpdate
from storyreel.errors import MediaError
from storyreel.settings import DEFAULT_PRESET, Preset

T = TypeVar("T")

# Storyboard images are larger than the frame so the clip can pan across them.
PAN_HEADROOM = 1.2


def _palette(seed: int, index: int, prompt: str = "") -> tuple[str, str]:
    key = f"{seed}:{index}" + (f":{prompt}" if prompt else "")
    digest = hashlib.sha256(key.encode()).digest()
    return f"0x{digest[0:3].hex()}", f"0x{digest[3:6].hex()}"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(" ".join(text.split()), width=width)[:8]) or " "


def _even(value: float) -> int:
    return int(value) // 2 * 2


class Stopped(MediaError):
    """The render was stopped on purpose (its caller was cancelled)."""


async def run_stoppable(executor: Executor | None, work: Callable[[threading.Event], T]) -> T:
    """Run blocking ``work`` on the executor; if we are cancelled, tell it to stop and wait."""
    stop = threading.Event()
    future = asyncio.get_running_loop().run_in_executor(executor, work, stop)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        # The work checks ``stop`` at every progress line and kills its FFmpeg; wait for that
        # so no process or temp file outlives the cancellation.
        try:
            await future
        except Exception:  # noqa: BLE001 - it was told to stop; any ending is fine
            pass
        raise


class LocalImageProvider:
    """A two-colour gradient seeded by the beat's description, labelled with its number; the
    first of the scene's characters' reference images drawn in its middle."""

    takes_references = True

    def __init__(
        self, font: Path | None = None, exe: str | None = None, executor: Executor | None = None
    ) -> None:
        self.font = font or ffmpeg.default_font()
        self.exe = exe
        self.executor = executor

    async def render(self, job: ImageJob) -> Path:
        return await run_stoppable(self.executor, lambda _stop: self.render_sync(job))

    def render_sync(self, job: ImageJob) -> Path:
        width = _even(job.platform.width * PAN_HEADROOM)
        height = _even(job.platform.height * PAN_HEADROOM)
        # The colours follow the prompt, so an edited scene redraws visibly differently.
        start, end = _palette(job.seed, job.index, job.prompt)
        text_file = job.workdir / f"storyboard-{job.index}.txt"
        # A small slate label in the upper band (inside every frame of the pan). Not the scene's
        # text: a clip pans over this image, and its sentence would show twice, once here and
        # once as the caption (the review page shows the text beside the image).
        text_file.write_text(f"Scene {job.index}", encoding="utf-8")
        output = job.workdir / f"storyboard-{job.index}.png"
        size = max(16, min(width, height) // 30)
        label = (
            f"drawtext=fontfile={ffmpeg.filter_path(self.font)}"
            f":textfile={ffmpeg.filter_path(text_file)}:fontcolor=white:fontsize={size}"
            f":line_spacing={size // 3}:x=(w-tw)/2:y=h*0.2"
            ":borderw=2:bordercolor=black@0.6"
        )
        inputs = ["-f", "lavfi", "-i",
                  f"gradients=s={width}x{height}:c0={start}:c1={end}:n=2:speed=0:d=1"]  # fmt: skip
        if job.references:
            # The character as the reference shows them, a third of the width, in the middle
            # of the picture (inside every frame of the pan): the clip starts from them.
            inputs += ["-i", str(job.references[0])]
            graph = [
                "-filter_complex",
                f"[0:v]{label}[slate];[1:v]scale={_even(width / 3)}:-2[who];"
                "[slate][who]overlay=(W-w)/2:(H-h)/2",
            ]
        else:
            graph = ["-vf", label]
        ffmpeg.run([*inputs, *graph, "-frames:v", "1", "-update", "1", str(output)], exe=self.exe)
        return output


class LocalClipProvider:
    """A slow pan across the storyboard image (or a gradient titled with the scene's text)."""

    calls_back = False

    def __init__(
        self,
        font: Path | None = None,
        exe: str | None = None,
        threads: int = 2,
        executor: Executor | None = None,
        preset: Preset = DEFAULT_PRESET,
    ) -> None:
        self.font = font or ffmpeg.default_font()
        self.exe = exe
        self.threads = threads
        self.preset: Preset = preset
        self.executor = executor

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:  # noqa: ARG002
        return f"local-{job.generation_id}-{job.clip_id}-{uuid.uuid4().hex[:8]}"

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        loop = asyncio.get_running_loop()
        # Progress comes from the render thread; ``report`` must run on the loop *in this
        # task's context*, where the activity's heartbeat lives (a bare callback has none).
        context = contextvars.copy_context()

        def threadsafe(status: ClipStatus, percent: float) -> None:
            loop.call_soon_threadsafe(report, status, percent, context=context)

        path = await run_stoppable(
            self.executor, lambda stop: self.render(prediction_id, job, threadsafe, stop)
        )
        return ClipOutput(path=path)

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        """A local clip renders inside ``wait``: until then it is only queued."""
        return PredictionUpdate(prediction_id=prediction_id, phase=PredictionPhase.queued)

    async def cancel(self, prediction_id: str, model: str = "") -> None:  # noqa: ARG002
        """Nothing runs outside this process: ``wait``'s FFmpeg stops with its task."""

    def _title(self, job: ClipJob, text_file: Path) -> str:
        """The scene's text as a small title at the top, or nothing (a filter prefix).

        Never a box near the bottom: that is where the assembly burns the real caption, and a
        clip that drew its own would show every caption twice. A storyboard image already
        carries the scene's text, so a clip panning over one needs no title at all.
        """
        if job.image is not None:
            return ""
        spec = job.platform
        size = max(18, min(spec.width, spec.height) // 30)
        text_file.write_text(_wrap(job.text, 36 if spec.width < spec.height else 64), "utf-8")
        return (
            f"drawtext=fontfile={ffmpeg.filter_path(self.font)}"
            f":textfile={ffmpeg.filter_path(text_file)}:expansion=none:fontcolor=white"
            f":fontsize={size}:line_spacing={size // 3}:x=(w-tw)/2:y=h*0.06"
            ":borderw=2:bordercolor=black@0.6,"
        )

    def render(
        self,
        prediction_id: str,
        job: ClipJob,
        report: Report,
        stop: threading.Event | None = None,
    ) -> Path:
        """Render the clip (blocking); ``stop`` ends it early, killing FFmpeg."""
        spec = job.platform
        frames = max(1, round(job.duration * spec.fps))
        output = job.workdir / f"{prediction_id}.mp4"
        if job.image is not None:
            source = ["-i", str(job.image)]
            # Pad the image if it is smaller than the frame, then pan corner to corner.
            size = (
                f"scale=w='max(iw,{spec.width})':h='max(ih,{spec.height})'"
                ":force_original_aspect_ratio=increase,"
            )
        else:
            start, end = _palette(job.seed, job.clip_id)
            width, height = _even(spec.width * PAN_HEADROOM), _even(spec.height * PAN_HEADROOM)
            source = [
                "-f", "lavfi", "-i",
                f"gradients=s={width}x{height}:c0={start}:c1={end}:n=2:speed=0",
            ]  # fmt: skip
            size = ""

        def progress(fraction: float) -> None:
            report(ClipStatus.rendering, round(fraction * 100, 1))

        report(ClipStatus.rendering, 0.0)
        pan_still(
            source,
            output,
            frames,
            spec,
            size=size,
            overlay=self._title(job, job.workdir / f"{prediction_id}.txt"),
            threads=self.threads,
            preset=self.preset,
            on_progress=ffmpeg.stopping(stop, Stopped, f"render of {prediction_id}", progress),
            exe=self.exe,
        )
        return output
