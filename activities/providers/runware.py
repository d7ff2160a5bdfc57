"""Clips made by Runware ``videoInference`` tasks, followed with ``getResponse``.

Runware can POST results to a ``webhookURL``, but its docs authenticate those deliveries only
by a secret placed in the URL's query string: no signature, no timestamp, so a delivery cannot
be verified the way ``storyreel.webhooks`` requires. Clips are therefore polled
(``calls_back = False``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from activities.providers.base import ClipJob, ClipOutput, Report, rising
from activities.providers.replicate import image_data_uri
from activities.providers.runware_api import RunwareClient, RunwareTask, TaskStatus
from storyreel.contracts import ClipStatus, PredictionUpdate
from storyreel.errors import ProviderError

logger = logging.getLogger(__name__)

ClipTaskBuilder = Callable[[ClipJob], dict[str, Any]]

# The clip lengths (seconds) some model families accept, keyed by the AIR's source. A model
# not listed gets whole seconds. The model pages on runware.ai/docs are the authority.
DEFAULT_DURATIONS: Mapping[str, Sequence[int]] = {
    "klingai": (5, 10),
    "minimax": (6, 10),
    "pixverse": (5, 8),
}


def clip_seconds(model: str, duration: float, table: Mapping[str, Sequence[int]]) -> int:
    """``duration`` rounded up to a length ``model`` accepts (its longest if none is enough)."""
    wanted = max(1, math.ceil(round(duration, 3)))
    allowed = sorted(table.get(model.split(":", 1)[0], ()))
    if not allowed:
        return wanted
    return next((length for length in allowed if length >= wanted), allowed[-1])


def task_uuid(job: ClipJob, resubmission: int = 0) -> str:
    """The ``taskUUID`` of a clip's task: the same job always gets the same one.

    Derived from the generation, clip, model, seed and a digest of the prompt (plus how many
    earlier tasks of this job failed), so a task resubmitted after a crash is recognisable.
    Runware's docs ask for a UUID v4 "unique per task" and do not say what a repeated one does;
    the digest is therefore shaped as a version-4 UUID, and the provider asks Runware about a
    UUID before sending it (see ``RunwareClipProvider.submit``).
    """
    prompt = hashlib.sha256(job.prompt.encode()).hexdigest()
    parts = (job.generation_id, str(job.clip_id), job.model, str(job.seed), prompt)
    digest = hashlib.sha256("\n".join((*parts, str(resubmission))).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


# Where the first frame goes: ``inputs.frameImages``, a list of ``{"image", "frame"}`` entries
# (runware.ai/docs/en/video-inference/api-reference, "inputs"; the model pages list the field
# as ``inputs.frameImages``). The image may be a UUID, a URL, base64 or a data URI.
FIRST_FRAME_FIELD = "inputs.frameImages"
# Veo's sound switch on Runware (runware.ai/docs/en/providers/google, ``providerSettings``).
GOOGLE_AUDIO_FIELD = "providerSettings.google.generateAudio"


def put(task: dict[str, Any], path: str, value: object) -> None:
    """Set ``value`` at a dotted ``path`` (``providerSettings.google.generateAudio``)."""
    *parents, leaf = path.split(".")
    node = task
    for name in parents:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            raise ValueError(f"{path}: {name} is not an object in the task")
        node = child
    node[leaf] = value


def default_clip_task(
    job: ClipJob, durations: Mapping[str, Sequence[int]] = DEFAULT_DURATIONS
) -> dict[str, Any]:
    """A ``videoInference`` task for ``job`` without ``taskUUID`` (blocking: reads the image).

    With ``job.spec`` (the model's catalogue entry) the length is the shortest the model makes
    that covers the scene, written as the model spells it; the frame size is the model's
    nearest listed size; seed and sound are sent only through the fields the model has. The
    first frame goes in ``inputs.frameImages``; the model pages say "provide exactly one of
    ``inputs.frameImages`` or ``width/height``", so a task with a first frame has no size (the
    model takes it from the image). Without a spec: the ``durations`` table, the platform's
    size, the seed, and Google's ``generateAudio`` switch for ``google:`` models.
    """
    spec = job.spec
    task: dict[str, Any] = {
        "taskType": "videoInference",
        "deliveryMethod": "async",
        "model": job.model,
        "positivePrompt": job.prompt,
        "numberResults": 1,
        "outputType": "URL",
        "outputFormat": "MP4",
        "includeCost": True,
    }
    if spec is None:
        task["duration"] = clip_seconds(job.model, job.duration, durations)
        task["seed"] = job.seed
        if job.model.startswith("google:"):
            put(task, GOOGLE_AUDIO_FIELD, job.audio)
    else:
        if spec.durations.field is not None:
            put(task, spec.durations.field, spec.durations.spell(job.clip_seconds()))
        if spec.seed_field is not None:
            put(task, spec.seed_field, job.seed)
        if spec.audio_field is not None:
            put(task, spec.audio_field, job.audio)
        for name, value in spec.fixed_inputs.items():
            put(task, name, value)
    # A model whose entry names no first-frame input is sent none (it would be refused).
    field = FIRST_FRAME_FIELD if spec is None else spec.first_frame_field
    image = image_data_uri(job.image) if job.image is not None and field else None
    if image is not None and field is not None:
        frame: object = [{"image": image, "frame": "first"}]
        if not field.endswith("frameImages"):
            frame = image  # a model taking the image itself (``inputs.image``)
        put(task, field, frame)
    else:
        size = spec.size(job.platform.width, job.platform.height) if spec else None
        task["width"], task["height"] = size or (job.platform.width, job.platform.height)
    return task


class RunwareClipProvider:
    """A ``ClipProvider`` running each clip as one Runware ``videoInference`` task.

    The prediction id is the task's ``taskUUID``. ``task_builder`` maps a job to the task when
    a model needs other fields; ``max_resubmissions`` bounds how many failed tasks of one job
    ``submit`` steps over before giving up.
    """

    calls_back = False

    def __init__(
        self,
        client: RunwareClient,
        task_builder: ClipTaskBuilder | None = None,
        *,
        max_resubmissions: int = 10,
    ) -> None:
        self.client = client
        self.task_builder = task_builder or default_clip_task
        self.max_resubmissions = max_resubmissions

    async def submit(self, job: ClipJob, webhook_url: str | None = None) -> str:  # noqa: ARG002
        """Send the job's task, or return the one already sent for it (after a crash).

        Each candidate ``taskUUID`` is read first: one Runware is running or has finished is
        followed instead of paid for again; one that failed is stepped over (the next UUID of
        the same job); one Runware does not report is sent.
        """
        task = await asyncio.to_thread(self.task_builder, job)
        for resubmission in range(self.max_resubmissions + 1):
            candidate = task_uuid(job, resubmission)
            seen = await self.client.get_response(candidate)
            if seen.reported and seen.status in (TaskStatus.processing, TaskStatus.success):
                logger.info(
                    "clip %d of %s: Runware task %s already exists; following it",
                    job.clip_id,
                    job.generation_id,
                    candidate,
                )
                return candidate
            if seen.reported and seen.status is TaskStatus.error:
                continue
            await self.client.submit({**task, "taskUUID": candidate})
            logger.info(
                "clip %d of %s: Runware task %s sent", job.clip_id, job.generation_id, candidate
            )
            return candidate
        raise ProviderError(
            f"clip {job.clip_id} of {job.generation_id}: "
            f"{self.max_resubmissions + 1} Runware tasks failed; not sending another"
        )

    async def check(self, prediction_id: str, model: str) -> PredictionUpdate:  # noqa: ARG002
        return (await self.client.get_response(prediction_id)).update()

    async def wait(self, prediction_id: str, job: ClipJob, report: Report) -> ClipOutput:
        forward = rising(report)
        while True:
            task = await self.client.get_response(prediction_id)
            if task.done:
                task.raise_for_failure()
                break
            forward(*self._progress(task))
            await self.client.sleep(self.client.poll_interval)
        assert task.videoURL is not None  # raise_for_failure saw to it
        path = job.output_path(prediction_id)
        await self.client.download(
            task.videoURL, path, lambda _size: report(ClipStatus.rendering, 100.0)
        )
        if task.cost is not None:
            logger.info("Runware task %s cost %s USD", prediction_id, task.cost)
        return ClipOutput(path=path, cost=task.cost)

    @staticmethod
    def _progress(task: RunwareTask) -> tuple[ClipStatus, float]:
        if not task.reported:
            return ClipStatus.queued, 0.0
        if task.progress is None:
            return ClipStatus.processing, 0.0
        return ClipStatus.rendering, min(100.0, task.progress)

    async def cancel(self, prediction_id: str, model: str) -> None:  # noqa: ARG002
        # Runware's docs describe no way to stop a task once sent: nothing to ask, nothing to
        # fail. The task runs out and is paid for.
        logger.info("Runware task %s cannot be cancelled upstream; left to finish", prediction_id)
