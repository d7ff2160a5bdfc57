"""A clip provider backed by fal's queue: one queued request per clip.

``submit`` queues the request (registering the webhook when given one), ``wait`` polls its
status until COMPLETED, then reads the result and copies the video into the job's workdir at
once: fal's output URLs are not kept forever. The prediction id is fal's ``request_id``; the
model id travels beside it because fal's status URLs are per app.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from activities.providers.base import ClipJob, ClipOutput, Report, rising
from activities.providers.fal_api import FalClient, QueueStatus
from activities.providers.replicate import aspect_ratio, clip_input, image_data_uri
from storyreel.catalogue import ModelSpec
from storyreel.catalogue.schema import describe
from storyreel.contracts import ClipStatus, PredictionUpdate
from storyreel.errors import PredictionFailedError, StoryreelError

__all__ = ["FalClipProvider", "default_clip_input", "output_url", "snapped_clip_input"]

logger = logging.getLogger(__name__)

ClipInputBuilder = Callable[[ClipJob], dict[str, Any]]

# Where fal video models put their file, most common first.
_OUTPUT_KEYS = ("video", "videos", "video_url", "output", "url")


def _seconds(job: ClipJob) -> int:
    # Whole seconds, rounded up so the clip is never shorter than its scene.
    return max(1, math.ceil(round(job.duration, 3)))


def default_clip_input(job: ClipJob) -> dict[str, Any]:
    """The input most fal text/image-to-video models accept (blocking: reads the image).

    fal's video models (Kling, Hailuo, Pixverse...) take ``duration`` as a string; a model that
    only knows a few durations wants ``snapped_clip_input`` instead.
    """
    payload: dict[str, Any] = {
        "prompt": job.prompt,
        "duration": str(_seconds(job)),
        "aspect_ratio": aspect_ratio(job.platform),
        "seed": job.seed,
    }
    if job.image is not None and (image := image_data_uri(job.image)) is not None:
        payload["image_url"] = image
    return payload


def snapped_clip_input(durations: Sequence[int]) -> ClipInputBuilder:
    """A builder for models with fixed durations (Kling: 5 and 10): the shortest one that
    covers the scene, or the longest there is."""
    allowed = sorted(durations)
    if not allowed:
        raise ValueError("give at least one duration")

    def build(job: ClipJob) -> dict[str, Any]:
        payload = default_clip_input(job)
        wanted = _seconds(job)
        payload["duration"] = str(next((d for d in allowed if d >= wanted), allowed[-1]))
        return payload

    return build


def _first_url(value: object) -> str | None:
    if isinstance(value, str):
        return value if value.startswith(("https://", "http://", "data:")) else None
    if isinstance(value, Mapping):
        return _first_url(value.get("url"))
    if isinstance(value, list):
        return next((url for item in value if (url := _first_url(item))), None)
    return None


def output_url(result: Mapping[str, Any], request_id: str) -> str:
    """The video's URL in a fal result: ``{"video": {"url": ...}}`` and the other shapes
    video models answer (a bare URL, a list of files, ``video_url``, ``output``)."""
    for key in _OUTPUT_KEYS:
        if url := _first_url(result.get(key)):
            return url
    raise PredictionFailedError(f"fal request {request_id} completed without a video file")


class FalClipProvider:
    """A ``ClipProvider`` running each clip as one queued request of ``job.model`` on fal.

    ``input_builder`` maps a job to the model's input when its schema differs from the common
    ``prompt``/``duration``/``aspect_ratio``/``seed``/``image_url`` one.
    """

    calls_back = True

    def __init__(self, client: FalClient, input_builder: ClipInputBuilder | None = None) -> None:
        self.client = client
        self.input_builder = input_builder
        self._described: dict[str, ModelSpec] = {}

    async def describe(self, model: str) -> ModelSpec:
        """``model`` as its endpoint's published schema describes it (read once per model)."""
        if model not in self._described:
            document = await self.client.endpoint_schema(model)
            source = f"{self.client.schema_url}?endpoint_id={model}"
            self._described[model] = describe("fal", model, document, source)
        return self._described[model]

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:
        payload = await clip_input(job, self.input_builder, default_clip_input)
        submission = await self.client.submit(job.model, payload, webhook=webhook_url)
        logger.info(
            "clip %d of %s: fal request %s queued",
            job.clip_id,
            job.generation_id,
            submission.request_id,
        )
        return submission.request_id

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:
        return (await self.client.status(model, prediction_id)).update(prediction_id)

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        forward = rising(report)

        def on_poll(status: QueueStatus) -> None:
            forward(status.clip_status, status.progress or 0.0)

        status = await self.client.follow(job.model, prediction_id, on_poll)
        result = await self.client.result(job.model, prediction_id)
        path = job.output_path(prediction_id)
        # Copying a large output takes a while: keep heartbeating meanwhile.
        await self.client.download(
            output_url(result, prediction_id),
            path,
            lambda _size: report(ClipStatus.rendering, 100.0),
        )
        return ClipOutput(path=path, predict_time=status.inference_time)

    async def cancel(self, prediction_id: str, model: str) -> None:
        try:
            outcome = await self.client.cancel(model, prediction_id)
        except StoryreelError as error:
            # Best effort: the caller is already being cancelled and must not fail for this.
            logger.warning("could not cancel fal request %s: %s", prediction_id, error)
        else:
            logger.info("cancelled fal request %s (%s)", prediction_id, outcome)
