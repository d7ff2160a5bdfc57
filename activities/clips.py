"""Clip stage: one activity per scene, heartbeating ``{status, progress, prediction_id}``.

A retried attempt (timeout, crash, transient error) resumes the prediction id of its last
heartbeat instead of creating (and paying for) a new prediction; a new one is made only when
the old one is known to have failed. Identical clips come from the content-addressed cache.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from temporalio import activity

from activities.cache import clip_digest
from activities.media.conform import ConformReport, check_output, conform_clip, probe_output
from activities.media.export import MediaDetails
from activities.media.export import details as probe_details
from activities.media.stitch import clip_media
from activities.providers.base import ClipJob, ClipOutput, ClipProvider, DescribesModels
from activities.providers.inputs import clip_warnings
from storyreel.catalogue import ModelSpec, lookup
from storyreel.contracts import (
    PLATFORMS,
    CheckInput,
    ClipInput,
    ClipProgress,
    ClipResult,
    ClipStatus,
    DescribeModelInput,
    DescribeModelResult,
    PredictionUpdate,
    SubmitResult,
)
from storyreel.errors import BadInputError, PredictionFailedError
from storyreel.keys import clip_cache_key, clip_key
from storyreel.settings import DEFAULT_PRESET, Preset, Price
from storyreel.storage import Storage

PriceOf = Callable[[str, str], Price]


def previous_progress(details: Sequence[Any]) -> ClipProgress | None:
    """The last heartbeat of an earlier attempt, if it left a usable one."""
    if not details:
        return None
    try:
        return ClipProgress.model_validate(details[-1])
    except ValidationError:
        return None


class ClipActivities:
    def __init__(
        self,
        storage: Storage,
        providers: Mapping[str, ClipProvider],
        work_root: Path,
        ffmpeg_exe: str | None = None,
        price_of: PriceOf | None = None,
        preset: Preset = DEFAULT_PRESET,
    ) -> None:
        self.storage = storage
        self.preset: Preset = preset
        self.providers = providers
        self.work_root = work_root
        self.ffmpeg_exe = ffmpeg_exe
        self.price_of: PriceOf = price_of or (lambda _provider, _model: Price())

    @activity.defn(name="submit_clip")
    async def submit_clip(self, request: ClipInput) -> SubmitResult:
        """Start the scene's prediction, asking the provider to call back (or reuse a cached
        clip); return at once: the workflow waits for the call, no worker slot does."""
        return await self._submit(request, activity.info().heartbeat_details)

    @activity.defn(name="check_prediction")
    async def check_prediction(self, request: CheckInput) -> PredictionUpdate:
        """One read of a prediction's status: the slow poll behind a webhook that may be lost."""
        provider = self._provider(request.provider)
        return await provider.check(request.prediction_id, request.model)

    @activity.defn(name="cancel_prediction")
    async def cancel_prediction(self, request: CheckInput) -> None:
        """Stop a prediction nobody waits for any more (a cancelled run's), best effort."""
        provider = self.providers.get(request.provider)
        if provider is not None:
            await provider.cancel(request.prediction_id, request.model)

    @activity.defn(name="describe_model")
    async def describe_model(self, request: DescribeModelInput) -> DescribeModelResult:
        """The model as this worker's clips will take it (lengths, sound, inputs): read before
        the first clip, so the run is quoted at the seconds the provider will bill."""
        provider = self._provider(request.provider)
        return DescribeModelResult(spec=await self._spec(request.provider, request.model, provider))

    @activity.defn(name="generate_clip")
    async def generate_clip(self, request: ClipInput) -> ClipResult:
        """Generate one scene's clip (or reuse an identical one), store it, return its key."""
        info = activity.info()
        return await self._generate(request, info.attempt, info.heartbeat_details)

    def _provider(self, name: str) -> ClipProvider:
        provider = self.providers.get(name)
        if provider is None:
            raise BadInputError(
                f"unknown clip provider {name!r}; "
                f"this worker has {', '.join(sorted(self.providers)) or 'none'}"
            )
        return provider

    async def _submit(self, request: ClipInput, details: Sequence[Any]) -> SubmitResult:
        provider = self._provider(request.provider)
        started = time.monotonic()
        self.work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="clip-") as work:
            job = await self._job(
                request, Path(work), await self._spec(request.provider, request.model, provider)
            )
            cache_key = await self._cache_key(job)
            if request.use_cache and await asyncio.to_thread(self.storage.exists, cache_key):
                cached = await self._from_cache(request, job, cache_key, started, 1)
                return SubmitResult(cached=cached)
            previous = previous_progress(details)
            if previous is not None and previous.prediction_id:
                # An earlier attempt created it (and then crashed): never pay for another.
                activity.logger.info(
                    "clip %d resumes prediction %s", request.clip_id, previous.prediction_id
                )
                return SubmitResult(
                    prediction_id=previous.prediction_id, calls_back=provider.calls_back
                )
            target = webhook_target(request) if provider.calls_back else None
            prediction_id = await provider.submit(job, target)
            self._beat(ClipStatus.processing, 0.0, prediction_id)
            return SubmitResult(prediction_id=prediction_id, calls_back=target is not None)

    @staticmethod
    async def _cache_key(job: ClipJob) -> str:
        return clip_cache_key(await asyncio.to_thread(clip_digest, job))

    async def _from_cache(
        self, request: ClipInput, job: ClipJob, cache_key: str, started: float, attempt: int
    ) -> ClipResult:
        self._beat(ClipStatus.cached, 100.0, None)
        key = clip_key(request.generation_id, request.clip_id)
        local = job.workdir / "cached.mp4"
        await asyncio.to_thread(self.storage.get_file, cache_key, local)
        # The one probe of this clip: what stitching needs travels on with its key.
        info = await asyncio.to_thread(probe_details, local, self.ffmpeg_exe)
        await asyncio.to_thread(self.storage.put_file, key, local)
        activity.logger.info("clip %d reused from the cache", request.clip_id)
        return ClipResult(
            clip_id=request.clip_id,
            key=key,
            duration=info.duration,
            render_seconds=round(time.monotonic() - started, 3),
            attempt=attempt,
            cached=True,
            media=clip_media(info),
        )

    async def _generate(
        self, request: ClipInput, attempt: int, details: Sequence[Any]
    ) -> ClipResult:
        provider = self._provider(request.provider)
        started = time.monotonic()
        key = clip_key(request.generation_id, request.clip_id)
        self.work_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.work_root, prefix="clip-") as work:
            job = await self._job(
                request, Path(work), await self._spec(request.provider, request.model, provider)
            )
            cache_key = await self._cache_key(job)
            if (
                request.use_cache
                and request.prediction_id is None
                and await asyncio.to_thread(self.storage.exists, cache_key)
            ):
                return await self._from_cache(request, job, cache_key, started, attempt)

            previous = previous_progress(details)
            prediction_id = previous.prediction_id if previous else None
            # A heartbeat of this activity is newer than the id the workflow passed in.
            prediction_id = prediction_id or request.prediction_id
            if prediction_id:
                activity.logger.info(
                    "clip %d resumes prediction %s", request.clip_id, prediction_id
                )
            (output, made), prediction_id = await self._follow(provider, job, prediction_id)
            self._beat(ClipStatus.rendering, 100.0, prediction_id)
            # Alive while the work waits its turn for a thread too (many clips finishing at once
            # queue for the pool; a queued cut hears no FFmpeg progress to beat on).
            async with _alive(prediction_id):
                # The scene's own length at the platform's size: the stitch takes clips as
                # they are.
                fitted = await self._conform(request, job, output.path, made)
                info = fitted.output
                if info is None:
                    info = await asyncio.to_thread(probe_details, fitted.path, self.ffmpeg_exe)
                await asyncio.to_thread(self.storage.put_file, key, fitted.path)
                if request.use_cache:
                    await asyncio.to_thread(self.storage.put_file, cache_key, fitted.path)
        billed = job.clip_seconds() if job.spec is not None else made.duration
        cost = output.cost
        if cost is None:
            sound = job.spec is not None and job.spec.audio and job.audio
            cost = self.price_of(request.provider, request.model).cost(
                billed, output.predict_time, audio=sound
            )
        warnings = (
            clip_warnings(job.spec, job.clip_id, job.image is not None, bool(job.references))
            if job.spec
            else []
        )
        if (stretched := fitted.warning(f"clip {job.clip_id}")) is not None:
            warnings.append(stretched)
        return ClipResult(
            clip_id=request.clip_id,
            key=key,
            duration=info.duration,
            prediction_id=prediction_id,
            render_seconds=round(time.monotonic() - started, 3),
            attempt=attempt,
            cost=cost,
            media=clip_media(info),
            billed_seconds=round(billed, 3),
            warnings=warnings,
        )

    @staticmethod
    async def _spec(name: str, model: str, provider: ClipProvider) -> ModelSpec | None:
        """What the model takes and makes: the catalogue's entry, else what its provider
        publishes (a provider that publishes nothing: None, and the job goes as it is)."""
        spec = lookup(name, model)
        if spec is None and isinstance(provider, DescribesModels):
            spec = await provider.describe(model)
        return spec

    async def _conform(
        self,
        request: ClipInput,
        job: ClipJob,
        source: Path,
        made: MediaDetails,
    ) -> ConformReport:
        """The output cut (or held) to the scene, off the event loop; a cancel stops FFmpeg.
        An output already as long as its scene is kept as it is (``fit=False``). The caller's
        ``_alive`` block heartbeats meanwhile."""
        stop = threading.Event()
        work = asyncio.ensure_future(
            asyncio.to_thread(
                conform_clip,
                source,
                job.workdir / "scene.mp4",
                job.duration,
                job.platform,
                exe=self.ffmpeg_exe,
                preset=self.preset,
                audio=request.clip_audio,
                stop=stop,
                known=made,
                fit=False,
            )
        )
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()
            await asyncio.gather(work, return_exceptions=True)
            raise

    async def _job(
        self, request: ClipInput, workdir: Path, spec: ModelSpec | None = None
    ) -> ClipJob:
        image: Path | None = None
        if request.image_key:
            image = workdir / "reference.png"
            await asyncio.to_thread(self.storage.get_file, request.image_key, image)
        references = []
        for number, key in enumerate(request.scene.references):
            local = workdir / f"character-{number}.png"
            await asyncio.to_thread(self.storage.get_file, key, local)
            references.append(local)
        return ClipJob(
            generation_id=request.generation_id,
            clip_id=request.clip_id,
            prompt=request.prompt,
            text=request.scene.caption or request.scene.description,
            duration=request.scene.duration,
            platform=PLATFORMS[request.platform],
            model=request.model,
            seed=request.seed,
            image=image,
            workdir=workdir,
            spec=spec,
            audio=request.clip_audio != "drop",
            provider=request.provider,
            clip_audio=request.clip_audio,
            references=tuple(references),
            draft=request.draft,
        )

    async def _follow(
        self, provider: ClipProvider, job: ClipJob, prediction_id: str | None
    ) -> tuple[tuple[ClipOutput, MediaDetails], str]:
        """The prediction's output, checked: resumed when an earlier attempt made one (a
        failed or unusable one is replaced), else a new prediction."""
        if prediction_id:
            try:
                output = await self._wait(provider, job, prediction_id)
                return (output, await self._checked(job, output)), prediction_id
            except PredictionFailedError as error:
                activity.logger.warning(
                    "clip %d: resumed prediction %s had failed (%s); starting a new one",
                    job.clip_id,
                    prediction_id,
                    error,
                )
        prediction_id = await provider.submit(job)
        # The first heartbeat of an attempt is sent at once (later ones are throttled): make
        # it carry the prediction id, so a crash right after the create cannot lose it.
        self._beat(ClipStatus.processing, 0.0, prediction_id)
        output = await self._wait(provider, job, prediction_id)
        try:
            return (output, await self._checked(job, output)), prediction_id
        except PredictionFailedError:
            # This attempt fails (the retry policy decides what next); the next one makes a
            # new prediction instead of fetching this output again.
            self._beat(ClipStatus.processing, 0.0, None)
            raise

    async def _checked(self, job: ClipJob, output: ClipOutput) -> MediaDetails:
        """The output's details, or ``PredictionFailedError`` when it is no usable video of
        about the asked length: never stitched, a new prediction is made instead."""
        asked = job.clip_seconds()
        info = await asyncio.to_thread(probe_output, output.path, self.ffmpeg_exe)
        reason = check_output(info, asked)
        if reason is not None or info is None:
            raise PredictionFailedError(
                f"clip {job.clip_id}: the provider's output is not a usable clip: {reason}"
            )
        return info

    async def _wait(self, provider: ClipProvider, job: ClipJob, prediction_id: str) -> ClipOutput:
        try:
            return await provider.wait(
                prediction_id,
                job,
                lambda status, percent: self._beat(status, percent, prediction_id),
            )
        except asyncio.CancelledError:
            if _cancelled_by_workflow():
                # Cancelled generation: stop paying for the upstream prediction too.
                await asyncio.shield(provider.cancel(prediction_id, job.model))
            raise

    @staticmethod
    def _beat(status: ClipStatus, progress: float, prediction_id: str | None) -> None:
        activity.heartbeat(
            ClipProgress(status=status, progress=progress, prediction_id=prediction_id)
        )


# How often a clip beats while its output is cut and stored (well inside CLIP_HEARTBEAT).
ALIVE_SECONDS = 5.0


@asynccontextmanager
async def _alive(prediction_id: str) -> AsyncIterator[None]:
    """Heartbeat every :data:`ALIVE_SECONDS` for as long as the block runs."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(ALIVE_SECONDS)
            ClipActivities._beat(ClipStatus.rendering, 100.0, prediction_id)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def webhook_target(request: ClipInput) -> str | None:
    """The URL a provider calls back for this clip: it names the run and the clip (neither is
    a secret; the delivery itself is authenticated by the provider's signature)."""
    if not request.webhook_url:
        return None
    query = urlencode({"generation": request.generation_id, "clip": request.clip_id})
    return f"{request.webhook_url.rstrip('/')}/{request.provider}?{query}"


def _cancelled_by_workflow() -> bool:
    """Whether this cancellation means nobody wants the clip any more.

    Only a cancel the workflow asked for does. A worker shutting down, a heartbeat timeout, a
    superseded attempt ("not found") or a pause all end with another attempt that resumes the
    prediction from the heartbeat: cancelling it upstream would make that attempt pay again.
    """
    details = activity.cancellation_details()
    return details is None or details.cancel_requested or details.reset
