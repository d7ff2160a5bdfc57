"""Clip and storyboard providers backed by Replicate models.

A clip is one Replicate prediction: ``submit`` creates it, ``wait`` polls it (reporting the
model's own tqdm progress) and copies its output into the job's workdir at once, because
Replicate deletes outputs an hour after the prediction ends.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activities.providers.base import ClipJob, ClipOutput, ImageJob, Report, rising
from activities.providers.inputs import flat_input
from activities.providers.replicate_api import Prediction, ReplicateClient
from storyreel.catalogue import ModelSpec
from storyreel.catalogue.schema import describe
from storyreel.contracts import ClipStatus, PlatformSpec, PredictionUpdate
from storyreel.errors import StoryreelError

logger = logging.getLogger(__name__)

ClipInputBuilder = Callable[[ClipJob], dict[str, Any]]
ImageInputBuilder = Callable[[ImageJob], dict[str, Any]]

# Larger reference images make request bodies Replicate refuses; they belong in its files API.
MAX_INLINE_IMAGE_BYTES = 5 * 1024 * 1024


def aspect_ratio(platform: PlatformSpec) -> str:
    return "9:16" if platform.height > platform.width else "16:9"


def image_data_uri(path: Path) -> str | None:
    """``path`` as a base64 data URI, or None when it is too large to send inline."""
    size = path.stat().st_size
    if size >= MAX_INLINE_IMAGE_BYTES:
        logger.warning("reference image %s is %d bytes: too large to send inline", path, size)
        return None
    mime = mimetypes.guess_type(path.name)[0] or _sniff(path)
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _sniff(path: Path) -> str:
    """An image's type from its first bytes (uploads are stored without a name)."""
    head = path.open("rb").read(12)
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return "image/png"


def default_clip_input(job: ClipJob) -> dict[str, Any]:
    """The input most Replicate text/image-to-video models accept (blocking: reads the image)."""
    payload: dict[str, Any] = {
        "prompt": job.prompt,
        "seed": job.seed,
        # Whole seconds, rounded up so the clip is never shorter than its scene.
        "duration": max(1, math.ceil(round(job.duration, 3))),
        "aspect_ratio": aspect_ratio(job.platform),
    }
    if job.image is not None and (image := image_data_uri(job.image)) is not None:
        payload["image"] = image
    return payload


def spec_input(job: ClipJob, spec: ModelSpec) -> dict[str, Any]:
    """The input of a model the catalogue (or its published schema) describes: the storyboard
    in its own first-frame field, a length it makes (blocking: reads the image)."""
    image = image_data_uri(job.image) if job.image is not None else None
    size = (job.platform.width, job.platform.height)
    references = [uri for path in job.references if (uri := image_data_uri(path)) is not None]
    return flat_input(
        spec, job.prompt, job.seed, size, image, job.duration, job.audio, references, job.draft
    )


async def clip_input(
    job: ClipJob, builder: ClipInputBuilder | None, default: ClipInputBuilder
) -> dict[str, Any]:
    """A clip's input, built off the event loop (it reads the images): the caller's own
    ``builder``, else the model's described one (``spec_input``), else the common ``default``."""
    if builder is not None:
        return await asyncio.to_thread(builder, job)
    if job.spec is not None:
        return await asyncio.to_thread(spec_input, job, job.spec)
    return await asyncio.to_thread(default, job)


def default_image_input(job: ImageJob) -> dict[str, Any]:
    return {"prompt": job.prompt, "seed": job.seed, "aspect_ratio": aspect_ratio(job.platform)}


async def cancel_quietly(client: ReplicateClient, prediction_id: str) -> None:
    """Cancel a prediction, logging rather than raising when that fails."""
    try:
        await client.cancel(prediction_id)
    except StoryreelError as error:
        # Best effort: the caller is already being cancelled and must not fail for this.
        logger.warning("could not cancel Replicate prediction %s: %s", prediction_id, error)
    else:
        logger.info("cancelled Replicate prediction %s", prediction_id)


class ReplicateClipProvider:
    """A ``ClipProvider`` running each clip as one prediction of ``job.model`` on Replicate.

    ``input_builder`` maps a job to the model's input when its schema differs from the common
    ``prompt``/``seed``/``duration``/``aspect_ratio``/``image`` one. ``cancel_after`` (e.g.
    ``"15m"``) asks Replicate to stop a prediction nobody follows any more.
    """

    calls_back = True

    def __init__(
        self,
        client: ReplicateClient,
        input_builder: ClipInputBuilder | None = None,
        *,
        cancel_after: str | None = None,
        provider: str = "replicate",
    ) -> None:
        self.client = client
        self.input_builder = input_builder
        self.cancel_after = cancel_after
        self.provider = provider
        self._described: dict[str, ModelSpec] = {}

    async def describe(self, model: str) -> ModelSpec:
        """``model`` as its published input schema describes it (read once per model)."""
        if model not in self._described:
            document = await self.client.model_schema(model)
            source = f"{self.client.base_url}/v1/models/{model.partition(':')[0]}"
            self._described[model] = describe(self.provider, model, document, source)
        return self._described[model]

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:
        payload = await clip_input(job, self.input_builder, default_clip_input)
        prediction = await self.client.create(
            job.model, payload, cancel_after=self.cancel_after, webhook=webhook_url
        )
        logger.info(
            "clip %d of %s: Replicate prediction %s created",
            job.clip_id,
            job.generation_id,
            prediction.id,
        )
        return prediction.id

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        forward = rising(report)

        def on_poll(prediction: Prediction) -> None:
            forward(prediction.clip_status, prediction.progress or 0.0)

        prediction = await self.client.follow(prediction_id, on_poll)
        path = job.output_path(prediction_id)
        # Copying a large output takes a while: keep heartbeating meanwhile.
        await self.client.download(
            prediction.output_url(), path, lambda _size: report(ClipStatus.rendering, 100.0)
        )
        return ClipOutput(path=path, predict_time=prediction.predict_time)

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        return (await self.client.get(prediction_id)).update()

    async def cancel(self, prediction_id: str, model: str) -> None:  # noqa: ARG002
        await cancel_quietly(self.client, prediction_id)


class ReplicateImageProvider:
    """An ``ImageProvider`` rendering each storyboard image as a prediction of ``job.model``."""

    # Its models' reference inputs are not catalogued: characters reach it as a description.
    takes_references = False

    def __init__(
        self, client: ReplicateClient, input_builder: ImageInputBuilder | None = None
    ) -> None:
        self.client = client
        self.input_builder = input_builder or default_image_input

    async def render(self, job: ImageJob) -> Path:
        prediction = await self.client.create(job.model, self.input_builder(job))
        try:
            prediction = await self.client.follow(prediction.id)
        except asyncio.CancelledError:
            await asyncio.shield(cancel_quietly(self.client, prediction.id))
            raise
        path = job.workdir / f"storyboard-{job.index}.png"
        await self.client.download(prediction.output_url(), path)
        return path
