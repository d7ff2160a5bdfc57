"""Clips made by Veo through the Gemini API, one long-running operation each (polled).

The prediction id is the operation's name (``models/{model}/operations/{id}``). Veo on the
Gemini API offers no callback, so ``calls_back`` is False.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import mimetypes
from collections.abc import Callable
from typing import Any

from activities.providers.base import ClipJob, ClipOutput, Report, rising
from activities.providers.replicate import MAX_INLINE_IMAGE_BYTES, aspect_ratio
from activities.providers.veo_api import Operation, VeoClient
from storyreel.contracts import ClipStatus, PredictionUpdate
from storyreel.errors import StoryreelError

logger = logging.getLogger(__name__)

ClipBodyBuilder = Callable[[ClipJob], dict[str, Any]]

# Clip lengths (seconds) each family accepts when the model has no catalogue entry: Veo 2 any
# whole second from 5 to 8, Veo 3 and 3.1 4, 6 or 8 (ai.google.dev/gemini-api/docs/video,
# "Veo model parameters").
VEO2_DURATIONS = (5, 6, 7, 8)
VEO3_DURATIONS = (4, 6, 8)


def clip_seconds(model: str, duration: float) -> int:
    """``duration`` rounded up to a length ``model`` accepts (its longest if none is enough)."""
    allowed = VEO2_DURATIONS if "veo-2" in model else VEO3_DURATIONS
    wanted = math.ceil(round(duration, 3))
    return next((length for length in allowed if length >= wanted), allowed[-1])


def default_clip_body(job: ClipJob) -> dict[str, Any]:
    """The ``predictLongRunning`` body for ``job`` (blocking: reads the image).

    The first frame goes in ``instances[0].image`` as ``bytesBase64Encoded`` + ``mimeType``
    when it is small enough (the Gemini API's Veo endpoint is reported to answer
    ``inlineData`` with a 400, see ``tests/fixtures/veo/README.md``). With ``job.spec`` the
    length is the shortest the model makes that covers the scene, as the model spells it, the
    aspect ratio the model's closest, and the lowest resolution the entry lists (Veo's
    default; 1080p and 4k make 8 s clips only); seed and sound go only through fields the
    entry names, and ``negativePrompt`` is never sent (a job has none), so nothing the model
    does not take is sent: the API refuses unknown parameters with a 400. Without a spec:
    Veo 2/3 lengths and the platform's aspect ratio.
    """
    spec = job.spec
    instance: dict[str, Any] = {"prompt": job.prompt}
    wants_image = spec is None or spec.first_frame_field is not None
    if job.image is not None and wants_image:
        size = job.image.stat().st_size
        if size < MAX_INLINE_IMAGE_BYTES:
            instance["image"] = {
                "bytesBase64Encoded": base64.b64encode(job.image.read_bytes()).decode("ascii"),
                "mimeType": mimetypes.guess_type(job.image.name)[0] or "image/png",
            }
        else:
            logger.warning("reference image %s is %d bytes: too large to send", job.image, size)
    if spec is None:
        parameters: dict[str, Any] = {
            "aspectRatio": aspect_ratio(job.platform),
            "durationSeconds": clip_seconds(job.model, job.duration),
        }
        return {"instances": [instance], "parameters": parameters}
    # The parameter names are the API's own; the entry says which values the model takes.
    parameters = {}
    ratio = spec.aspect_ratio(job.platform.width, job.platform.height)
    if ratio is not None:
        parameters["aspectRatio"] = ratio
    if spec.durations.field is not None:
        parameters["durationSeconds"] = spec.durations.spell(job.clip_seconds())
    if spec.resolutions:
        # The lowest: 1080p and 4k make 8 s clips only, and the clip is fitted to the frame.
        parameters["resolution"] = min(spec.resolutions, key=_lines)
    if spec.seed_field is not None:
        parameters[spec.seed_field.removeprefix("parameters.")] = job.seed
    if spec.audio_field is not None:
        parameters[spec.audio_field.removeprefix("parameters.")] = job.audio
    parameters.update(spec.fixed_inputs)
    return {"instances": [instance], "parameters": parameters}


def _lines(resolution: str) -> int:
    """``720p`` -> 720, ``4k`` -> 2160 (unknown words last)."""
    text = resolution.lower()
    if text.endswith("k") and text[:-1].isdigit():
        return int(text[:-1]) * 540
    digits = text.rstrip("p")
    return int(digits) if digits.isdigit() else 1 << 30


class VeoClipProvider:
    """A ``ClipProvider`` running each clip as one Veo operation on the Gemini API.

    ``body_builder`` maps a job to the request body when a model needs other parameters
    (``negativePrompt``, ``resolution``, ``personGeneration``, ...).
    """

    calls_back = False

    def __init__(self, client: VeoClient, body_builder: ClipBodyBuilder | None = None) -> None:
        self.client = client
        self.body_builder = body_builder or default_clip_body

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:  # noqa: ARG002
        body = await asyncio.to_thread(self.body_builder, job)
        operation = await self.client.start(job.model, body)
        logger.info(
            "clip %d of %s: Veo operation %s started",
            job.clip_id,
            job.generation_id,
            operation.name,
        )
        return operation.name

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        return (await self.client.get(prediction_id)).update()

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        forward = rising(report)
        while True:
            operation = await self.client.get(prediction_id)
            if operation.done:
                operation.raise_for_failure()
                break
            forward(*self._progress(operation))
            await self.client.sleep(self.client.poll_interval)
        path = job.output_path(prediction_id.rsplit("/", 1)[-1])
        # Keep heartbeating while a large file arrives.
        await self.client.download(
            operation.video_uris[0], path, lambda _size: report(ClipStatus.rendering, 100.0)
        )
        return ClipOutput(path=path)

    @staticmethod
    def _progress(operation: Operation) -> tuple[ClipStatus, float]:
        if operation.progress is None:
            return ClipStatus.processing, 0.0
        return ClipStatus.rendering, operation.progress

    async def cancel(self, prediction_id: str, model: str) -> None:  # noqa: ARG002
        try:
            await self.client.cancel(prediction_id)
        except StoryreelError as error:
            # Best effort: the caller is already being cancelled and must not fail for this.
            logger.warning("could not cancel Veo operation %s: %s", prediction_id, error)
        else:
            logger.info("cancelled Veo operation %s", prediction_id)
