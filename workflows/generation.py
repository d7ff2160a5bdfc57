"""``VideoGenerationWorkflow``: plan -> storyboard -> clips (parallel) -> assemble -> publish."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    is_cancelled_exception,
)
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.assembly import AssemblyActivities
    from activities.clips import ClipActivities
    from activities.llm_planner import LLMPlanner
    from activities.planning import check_counts, plan_generation
    from activities.records import RecordActivities
    from activities.storyboard import StoryboardActivities
    from storyreel.contracts import (
        CLIP_ACTIVITY_PREFIX,
        CLIP_DONE,
        CLIP_ENDED,
        WORKFLOW_NAME,
        AssemblyClip,
        Charge,
        CheckInput,
        ClipInput,
        ClipResult,
        ClipState,
        ClipStatus,
        ClipTry,
        GenerationInput,
        GenerationMetrics,
        GenerationRequest,
        GenerationState,
        GenerationStatus,
        PlanInput,
        PlannedScene,
        PredictionSignal,
        ProviderChoice,
        PublishInput,
        RecordInput,
        RetryClipRequest,
        SceneEdit,
        Stage,
        StageTiming,
        StitchInput,
        StoryboardInput,
    )
    from storyreel.errors import FALLBACK_TYPES, BadInputError
    from storyreel.priority import task_priority
    from storyreel.temporal import STATUS_ATTR
    from workflows import policies

SUMMARY_WORDS = 8
# Patch: runs started by this code write their record at every stage (on the workflow's own
# queue, so the write is immediate) and the API reads running state from the record.
RECORD_STAGES = "record-every-stage"
# Patch: record writes are local activities (run by the workflow's own worker, shown as
# markers): the Web UI timeline of a run is its clips, storyboard and stitch, not a dozen
# "record" activities. Removal plan: once no run started before it can still be open (the
# longest is a retry window, 24 h, after the deploy), drop the old branch, then the patch
# call with ``workflow.deprecate_patch`` for one release.
LIGHT_RECORDS = "record-as-local-activity"
# Patch: a clip prompt without consistency context has no leading blank lines.
PLAIN_PROMPT = "prompt-without-empty-context"
TICK = timedelta(microseconds=1)
DEFAULT_PARALLEL_CLIPS = 5


class GenerationFailure(Exception):
    """A reason to end the run as ``failed`` (raised and caught inside the workflow)."""


def _collect(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def clip_activity_id(clip_id: int, round_: int) -> str:
    return f"{CLIP_ACTIVITY_PREFIX}{clip_id}-{round_}"


def first_words(text: str, count: int = SUMMARY_WORDS) -> str:
    words = text.split()
    return " ".join(words[:count]) + (" …" if len(words) > count else "")


def clip_prompt(context: str, description: str) -> str:
    """The clip's prompt: the consistency context, when there is one, above the scene."""
    scene = f"SCENE: {description}"
    return f"{context}\n\n{scene}" if context else scene


def describe_failure(error: BaseException) -> tuple[str, int | None]:
    """A readable message for a failed activity and, when known, its attempt number."""
    cause = error.cause if isinstance(error, ActivityError) else error
    attempt: int | None = None
    if isinstance(cause, ApplicationError):
        for detail in cause.details:
            if isinstance(detail, dict) and isinstance(detail.get("attempt"), int):
                attempt = detail["attempt"]
        return cause.message, attempt
    if isinstance(cause, ActivityTimeoutError):
        kind = cause.type.name.lower().replace("_", "-") if cause.type else "unknown"
        return f"timed out ({kind})", attempt
    return str(cause or error), attempt


def failure_type(error: ActivityError) -> str | None:
    """The error type an activity failed with (None for timeouts and cancellations)."""
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def attempts_used(error: ActivityError, retry: RetryPolicy) -> int:
    _, attempt = describe_failure(error)
    if attempt is not None:
        return attempt
    if error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return retry.maximum_attempts
    return 1


@workflow.defn(name=WORKFLOW_NAME)
class VideoGenerationWorkflow:
    """One generation: every scene's clip is its own activity, all running at once."""

    @workflow.init
    def __init__(self, request: GenerationInput) -> None:
        self._request = request
        now = workflow.now()
        self._state = GenerationState(
            generation_id=workflow.info().workflow_id,
            title=request.title,
            platform=request.platform,
            provider=request.provider,
            budget=request.budget,
            created_at=now,
            updated_at=now,
        )
        self._scenes: list[PlannedScene] = []
        self._retries: list[RetryClipRequest] = []
        self._finish_without_failed = False
        self._slots = asyncio.Semaphore(request.max_parallel_clips or DEFAULT_PARALLEL_CLIPS)
        self._running = 0
        self._waited = timedelta()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._rounds: dict[int, int] = {}
        self._public_request = request.model_dump(
            mode="json", include=set(GenerationRequest.model_fields)
        )
        self._reserved = 0.0
        self._reservations: dict[int, float] = {}
        self._record_stages = False
        self._light_records = False
        # Predictions a verified webhook said have ended (ids, so early and repeated
        # deliveries are as harmless as late ones).
        self._ended_predictions: set[str] = set()
        self._record_busy = False
        self._record_again = False
        self._approved = False
        self._context = ""
        self._edits: list[SceneEdit] = []
        # Every activity carries the run's priority: a person's clips and stitching go before
        # batch work on a busy queue (runs from before requests had one inherit the default).
        self._priority = task_priority(request.priority, request.user_id)

    # -- interface -----------------------------------------------------------------------------

    @workflow.query
    def get_state(self) -> GenerationState:
        return self._state

    @workflow.signal
    def retry_clip(self, request: RetryClipRequest) -> None:
        """Generate a failed clip again, optionally with a new prompt."""
        self._retries.append(request)

    @workflow.signal
    def prediction_update(self, signal: PredictionSignal) -> None:
        """A provider called back (verified by the API): a clip's prediction has ended."""
        update = signal.update
        clip = self._state.clip(signal.clip_id)
        if clip is not None and clip.prediction_id == update.prediction_id:
            if update.progress is not None and clip.status not in CLIP_DONE:
                clip.progress = max(clip.progress, min(99.9, update.progress))
        if update.ended:
            self._ended_predictions.add(update.prediction_id)

    @workflow.signal
    def approve(self) -> None:
        """Start the clips of a run awaiting approval of its storyboard."""
        self._approved = True

    @workflow.signal
    def edit_scene(self, edit: SceneEdit) -> None:
        """Change one scene of a run awaiting approval; only its storyboard image is redrawn."""
        if self._state.status is not GenerationStatus.awaiting_approval:
            workflow.logger.warning(
                "ignoring an edit of scene %d: the run is %s", edit.index, self._state.status.value
            )
            return
        self._edits.append(edit)

    @workflow.signal
    def finish_without_failed(self) -> None:
        """Stop waiting for retries and assemble the video from the clips that succeeded."""
        self._finish_without_failed = True

    @workflow.run
    async def run(self, request: GenerationInput) -> GenerationState:  # noqa: ARG002
        try:
            self._record_stages = request.user_id is not None and workflow.patched(RECORD_STAGES)
            self._light_records = self._record_stages and workflow.patched(LIGHT_RECORDS)
            await self._record()
            await self._plan()
            await self._storyboard()
            if self._request.review == "storyboard":
                await self._await_approval()
            await self._clips()
            await self._assemble()
            await self._record()
            await self._publish(GenerationStatus.completed)
        except asyncio.CancelledError:
            self._close_stage()
            self._set_status(GenerationStatus.cancelled)
            await self._write_record(GenerationStatus.cancelled)
            raise
        except (GenerationFailure, ActivityError) as error:
            if is_cancelled_exception(error):
                # The run was cancelled while one activity ran (e.g. assembly): the activity
                # comes back cancelled, and so does the run.
                self._close_stage()
                self._set_status(GenerationStatus.cancelled)
                await self._write_record(GenerationStatus.cancelled)
                raise
            message = describe_failure(error)[0] if isinstance(error, ActivityError) else str(error)
            await self._fail(message)
            raise ApplicationError(message, type="GenerationFailed", non_retryable=True) from None
        return self._state

    # -- stages --------------------------------------------------------------------------------

    async def _plan(self) -> None:
        self._enter(Stage.plan, GenerationStatus.planning)
        await self._record_stage()
        request = self._request
        plan_input = PlanInput(
            generation_id=self._state.generation_id,
            script=request.script,
            scenes=request.scenes,
            duration=request.duration,
            platform=request.platform,
        )
        if request.planner == "llm":
            # Only runs that ask for it (none before this code) take this path: no patch.
            plan = await workflow.execute_activity_method(
                LLMPlanner.plan_with_llm,
                plan_input.model_copy(
                    update={
                        "language": request.language,
                        "consistency_context": request.consistency_context,
                    }
                ),
                task_queue=request.queues.media,
                start_to_close_timeout=policies.LLM_PLAN_TIMEOUT,
                priority=self._priority,
                retry_policy=policies.LLM_PLAN_RETRY,
                summary="plan: script to scenes (LLM)",
            )
        else:
            plan = await workflow.execute_activity(
                plan_generation,
                plan_input,
                task_queue=request.queues.media,
                start_to_close_timeout=policies.PLAN_TIMEOUT,
                priority=self._priority,
                retry_policy=policies.PLAN_RETRY,
                summary="plan: script to scenes",
            )
        self._scenes = plan.scenes
        self._state.scenes = list(plan.scenes)
        self._state.warnings.extend(plan.warnings)
        count = len(plan.scenes)
        # The request's own context wins over the one the planner wrote.
        context = request.consistency_context.strip() or plan.consistency_context.strip()
        self._context = context
        # Runs begun before the patch keep the prompts (and clip cache keys) they started with.
        legacy = "" if context or workflow.patched(PLAIN_PROMPT) else "\n\n"
        self._state.clips = [
            ClipState(
                clip_id=scene.index,
                prompt=legacy + clip_prompt(context, scene.description),
                summary=f"clip {scene.index}/{count}: {first_words(scene.description)}",
            )
            for scene in plan.scenes
        ]

    async def _storyboard(self) -> None:
        self._enter(Stage.storyboard, GenerationStatus.storyboarding)
        await self._record_stage()
        count = len(self._scenes)
        keys = await asyncio.gather(*(self._draw(scene) for scene in self._scenes))
        self._state.storyboard_keys = list(keys)
        try:
            check_counts(count, len(self._state.storyboard_keys), len(self._state.clips))
        except BadInputError as error:
            raise GenerationFailure(str(error)) from None

    async def _draw(self, scene: PlannedScene) -> str:
        """One scene's storyboard image; its storage key."""
        request, count = self._request, len(self._scenes)
        result = await workflow.execute_activity_method(
            StoryboardActivities.render_storyboard,
            StoryboardInput(
                generation_id=self._state.generation_id,
                scene=scene,
                scene_count=count,
                platform=request.platform,
                provider=request.image_provider,
                model=request.image_model,
                seed=request.seed,
                use_cache=request.use_cache,
            ),
            task_queue=request.queues.media,
            start_to_close_timeout=policies.STORYBOARD_TIMEOUT,
            priority=self._priority,
            retry_policy=policies.STORYBOARD_RETRY,
            summary=f"storyboard {scene.index}/{count}: {first_words(scene.description)}",
        )
        return result.key

    async def _await_approval(self) -> None:
        """Wait, durably and without paying for anything, until someone approves the
        storyboard; redraw the scenes they edit meanwhile."""
        window = timedelta(seconds=self._request.review_window_seconds)
        deadline = workflow.now() + window
        self._set_status(GenerationStatus.awaiting_approval)
        await self._record()
        while not self._approved:
            left = deadline - workflow.now()
            try:
                await workflow.wait_condition(
                    lambda: self._approved or bool(self._edits), timeout=left
                )
            except TimeoutError:
                raise GenerationFailure(
                    f"the storyboard was not approved within {window}; nothing was paid for"
                ) from None
            edits, self._edits = self._edits, []
            for edit in edits:
                await self._apply(edit)
            if edits:
                await self._record()
        self._set_status(GenerationStatus.storyboarding)

    async def _apply(self, edit: SceneEdit) -> None:
        if not 1 <= edit.index <= len(self._scenes):
            workflow.logger.warning("ignoring an edit of scene %d: no such scene", edit.index)
            return
        old = self._scenes[edit.index - 1]
        # A signal's payload carries every field (unset ones as null): null means "unchanged".
        changes = edit.model_dump(exclude={"index"}, exclude_none=True)
        scene = old.model_copy(update=changes)
        self._scenes[edit.index - 1] = scene
        # Later scenes start where the edited one now ends.
        start = 0.0
        for index, each in enumerate(self._scenes):
            self._scenes[index] = each.model_copy(update={"start": round(start, 3)})
            start += each.duration
        self._state.scenes = list(self._scenes)
        clip = self._state.clips[edit.index - 1]
        count = len(self._scenes)
        clip.prompt = clip_prompt(self._context, scene.description)
        clip.summary = f"clip {scene.index}/{count}: {first_words(scene.description)}"
        if (scene.description, scene.caption) != (old.description, old.caption):
            self._touch()
            self._state.storyboard_keys[edit.index - 1] = await self._draw(scene)
        self._touch()

    async def _clips(self) -> None:
        self._enter(Stage.clips, GenerationStatus.generating)
        started = workflow.now()
        for clip in self._state.clips:
            self._launch(clip)
        try:
            await self._record_stage()
            await self._settle_clips()
        except asyncio.CancelledError:
            for task in self._tasks.values():
                task.cancel()
            # Wait for every clip activity to acknowledge, so its temp files and FFmpeg are gone.
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            raise
        metrics = self._state.clip_stage
        metrics.wall_seconds = round(((workflow.now() - started) - self._waited).total_seconds(), 3)
        if metrics.wall_seconds > 0:
            metrics.speedup = round(metrics.sum_clip_seconds / metrics.wall_seconds, 2)
        self._close_stage()

    async def _settle_clips(self) -> None:
        """Run until every clip is done, or the caller gives up on the failed ones."""
        while True:
            await workflow.wait_condition(lambda: bool(self._retries) or self._clips_ended())
            if self._take_retries():
                await self._record_stage()
            if not self._clips_ended():
                continue
            failed = [
                clip.clip_id for clip in self._state.clips if clip.status is ClipStatus.failed
            ]
            if not failed:
                return
            if self._finish_without_failed:
                if len(failed) == len(self._state.clips):
                    raise GenerationFailure("every clip failed; nothing to assemble")
                self._state.skipped_clips = failed
                return
            await self._await_retry(failed)

    async def _await_retry(self, failed: list[int]) -> None:
        window = timedelta(seconds=self._request.retry_window_seconds)
        self._state.retry_deadline = workflow.now() + window
        self._set_status(GenerationStatus.awaiting_retry)
        await self._record_stage()
        waiting_since = workflow.now()
        try:
            await workflow.wait_condition(
                lambda: bool(self._retries) or self._finish_without_failed, timeout=window
            )
        except TimeoutError:
            raise GenerationFailure(
                f"clip(s) {', '.join(map(str, failed))} failed and no retry came within {window}"
            ) from None
        finally:
            self._waited += workflow.now() - waiting_since
            self._state.retry_deadline = None
        self._set_status(GenerationStatus.generating)

    async def _assemble(self) -> None:
        self._enter(Stage.assemble, GenerationStatus.assembling)
        await self._record_stage()
        request = self._request
        kept = [clip for clip in self._state.clips if clip.status in CLIP_DONE and clip.key]
        clips = []
        for clip in kept:
            scene = self._scenes[clip.clip_id - 1]
            clips.append(
                AssemblyClip(
                    key=clip.key or "",
                    clip_id=clip.clip_id,
                    caption=scene.caption or scene.description,
                    narration_text=scene.narration or scene.description,
                    media=clip.media,
                )
            )
        result = await workflow.execute_activity_method(
            AssemblyActivities.stitch_video,
            StitchInput(
                generation_id=self._state.generation_id,
                clip_keys=[clip.key for clip in clips],
                platform=request.platform,
                clips=clips,
                captions=request.captions,
                narration=request.narration,
                voice=request.voice,
                language=request.language,
                music=request.music,
                transition=request.transition,
                transition_seconds=request.transition_seconds,
            ),
            task_queue=self._request.queues.media,
            start_to_close_timeout=policies.STITCH_TIMEOUT,
            priority=self._priority,
            heartbeat_timeout=policies.STITCH_HEARTBEAT,
            retry_policy=policies.STITCH_RETRY,
            summary=f"stitch {len(kept)} clips",
        )
        state = self._state
        state.video_key, state.thumbnail_key = result.key, result.thumbnail_key
        state.duration = result.duration
        state.assembly = result
        self._close_stage()

    async def _publish(self, final: GenerationStatus) -> None:
        self._enter(Stage.publish, self._state.status)
        self._close_stage()
        self._state.metrics = self._metrics()
        record = self._state.model_copy(deep=True)
        record.status = final
        await workflow.execute_activity_method(
            AssemblyActivities.publish_generation,
            PublishInput(state=record),
            task_queue=self._request.queues.media,
            start_to_close_timeout=policies.PUBLISH_TIMEOUT,
            priority=self._priority,
            retry_policy=policies.PUBLISH_RETRY,
            summary="publish the record",
        )
        self._set_status(final)
        await self._record()

    def _metrics(self) -> GenerationMetrics:
        """Where the run's time went: seconds per stage (the clip stage without the time spent
        awaiting a retry, which is a person's time, not the pipeline's), the fan-out's speedup,
        and the longest stage."""
        state, waited = self._state, self._waited.total_seconds()
        stages: dict[Stage, float] = {}
        for timing in state.timings:
            seconds = timing.seconds
            if seconds is None:
                continue
            if timing.stage is Stage.clips:
                seconds = max(0.0, seconds - waited)
            stages[timing.stage] = round(stages.get(timing.stage, 0.0) + seconds, 3)
        clip_stage = state.clip_stage
        began = state.created_at or workflow.now()
        return GenerationMetrics(
            stage_seconds=stages,
            total_seconds=round((workflow.now() - began).total_seconds(), 3),
            waiting_seconds=round(waited, 3),
            clip_wall_seconds=clip_stage.wall_seconds,
            sum_clip_seconds=clip_stage.sum_clip_seconds,
            speedup=clip_stage.speedup,
            max_concurrent_clips=clip_stage.max_concurrent,
            clips=len(state.clips),
            bottleneck=max(stages, key=stages.__getitem__) if stages else None,
        )

    async def _write_record(self, final: GenerationStatus) -> None:
        """Best effort record of a run that did not complete (the run's outcome stands)."""
        try:
            await self._publish(final)
        except ActivityError:
            workflow.logger.warning("could not write the record of %s run", final.value)
        self._set_status(final)

    async def _fail(self, message: str) -> None:
        self._state.error = message
        self._close_stage()
        await self._write_record(GenerationStatus.failed)

    # -- clips ---------------------------------------------------------------------------------

    def _launch(self, clip: ClipState) -> None:
        clip.status, clip.progress, clip.error = ClipStatus.queued, 0.0, None
        self._rounds[clip.clip_id] = self._rounds.get(clip.clip_id, 0) + 1
        task = asyncio.create_task(self._run_clip(clip))
        # Clip tasks are not always awaited (the run watches their state instead); collecting
        # their outcome keeps an evicted run's teardown from logging "never retrieved".
        task.add_done_callback(_collect)
        self._tasks[clip.clip_id] = task

    async def _run_clip(self, clip: ClipState) -> None:
        charge = await self._run_clip_in_slot(clip)
        await self._record(charge)

    async def _run_clip_in_slot(self, clip: ClipState) -> Charge | None:
        scene = self._scenes[clip.clip_id - 1]
        charge: Charge | None = None
        async with self._slots:
            if not self._within_budget(clip, scene):
                return None
            clip.status, clip.started_at, clip.ended_at = (
                ClipStatus.processing,
                workflow.now(),
                None,
            )
            self._running += 1
            metrics = self._state.clip_stage
            metrics.max_concurrent = max(metrics.max_concurrent, self._running)
            self._touch()
            try:
                result = await self._make_clip(clip, scene)
            except ActivityError as error:
                clip.status = ClipStatus.failed
                clip.error = describe_failure(error)[0]
                clip.attempts += attempts_used(error, policies.CLIP_RETRY)
                workflow.logger.warning(
                    "clip %d failed after %d attempt(s): %s",
                    clip.clip_id,
                    clip.attempts,
                    clip.error,
                )
            except asyncio.CancelledError:
                self._end_clip(clip)
                raise
            else:
                clip.status = ClipStatus.cached if result.cached else ClipStatus.complete
                clip.progress = 100.0
                clip.key, clip.duration = result.key, result.duration
                clip.media = result.media
                clip.cost = round(clip.cost + result.cost, 6)
                self._state.cost = round(self._state.cost + result.cost, 6)
                charge = Charge(
                    clip_id=clip.clip_id,
                    amount=result.cost,
                    key=f"{self._state.generation_id}/clip-{clip.clip_id}"
                    f"/round-{self._rounds[clip.clip_id]}",
                )
                clip.prediction_id, clip.render_seconds = (
                    result.prediction_id,
                    result.render_seconds,
                )
                clip.attempts += result.attempt
            self._end_clip(clip)
        return charge

    async def _make_clip(self, clip: ClipState, scene: PlannedScene) -> ClipResult:
        """The clip from its provider, or from the next one of the request's fallback chain
        when the provider cannot deliver it (refused, failed after retries, throttled)."""
        request = self._request
        chain = [ProviderChoice(provider=request.provider, model=request.model)]
        chain += request.fallback
        for index, choice in enumerate(chain):
            clip.provider, clip.model = choice.provider, choice.model
            try:
                result = await self._clip_from(clip, scene, choice, index)
            except ActivityError as error:
                if not request.fallback:
                    raise
                message = describe_failure(error)[0]
                clip.tries.append(
                    ClipTry(
                        provider=choice.provider,
                        model=choice.model,
                        status=ClipStatus.failed,
                        error=message,
                        prediction_id=clip.prediction_id,
                    )
                )
                if index + 1 == len(chain) or failure_type(error) not in FALLBACK_TYPES:
                    raise
                clip.attempts += attempts_used(error, policies.CLIP_RETRY)
                clip.prediction_id = None
                workflow.logger.warning(
                    "clip %d: %s could not make it (%s); moving to %s",
                    clip.clip_id,
                    choice.provider,
                    message,
                    chain[index + 1].provider,
                )
                self._touch()
                continue
            if request.fallback:
                clip.tries.append(
                    ClipTry(
                        provider=choice.provider,
                        model=choice.model,
                        status=ClipStatus.cached if result.cached else ClipStatus.complete,
                        cost=result.cost,
                        prediction_id=result.prediction_id,
                    )
                )
            return result
        raise AssertionError("a fallback chain is never empty")

    async def _clip_from(
        self, clip: ClipState, scene: PlannedScene, choice: ProviderChoice, index: int
    ) -> ClipResult:
        """One provider's go at the clip: polled to the end, or (webhooks) submitted, waited
        for without a worker, then copied."""
        request = self._request
        queue = request.queues.clips(choice.provider)
        activity_id = clip_activity_id(clip.clip_id, self._rounds[clip.clip_id])
        if index:
            activity_id += f"-{choice.provider}"
        clip_input = ClipInput(
            generation_id=self._state.generation_id,
            clip_id=clip.clip_id,
            clip_count=len(self._state.clips),
            prompt=clip.prompt,
            scene=scene,
            platform=request.platform,
            provider=choice.provider,
            model=choice.model,
            seed=request.seed,
            image_key=self._state.storyboard_keys[clip.clip_id - 1],
            use_cache=request.use_cache,
        )
        if request.webhook_url:
            submitted = await workflow.execute_activity_method(
                ClipActivities.submit_clip,
                clip_input.model_copy(update={"webhook_url": request.webhook_url}),
                task_queue=queue,
                start_to_close_timeout=policies.SUBMIT_TIMEOUT,
                priority=self._priority,
                retry_policy=policies.CLIP_RETRY,
                summary=f"{clip.summary}: submit",
                activity_id=f"{activity_id}-submit",
            )
            if submitted.cached is not None:
                return submitted.cached
            clip.prediction_id = submitted.prediction_id
            clip_input.prediction_id = submitted.prediction_id
            if submitted.calls_back and submitted.prediction_id:
                await self._await_call(clip, choice, submitted.prediction_id, activity_id)
        return await workflow.execute_activity_method(
            ClipActivities.generate_clip,
            clip_input,
            task_queue=queue,
            start_to_close_timeout=self._clip_timeout,
            priority=self._priority,
            heartbeat_timeout=policies.CLIP_HEARTBEAT,
            retry_policy=policies.CLIP_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=clip.summary,
            # Readable ids let the API match live heartbeats to their clip.
            activity_id=activity_id,
        )

    async def _await_call(
        self, clip: ClipState, choice: ProviderChoice, prediction_id: str, activity_id: str
    ) -> None:
        """Wait (durably, holding no worker) until the provider says the prediction ended, with
        a slow status read now and then in case its call was lost. Past the clip timeout the
        copy activity polls it to the end: a paid prediction is never abandoned."""
        self._touch()
        await self._record_soon()
        target = CheckInput(
            provider=choice.provider, model=choice.model, prediction_id=prediction_id
        )
        every = timedelta(seconds=self._request.fallback_poll_seconds)
        deadline = workflow.now() + self._clip_timeout
        checks = 0
        try:
            while prediction_id not in self._ended_predictions and workflow.now() < deadline:
                try:
                    await workflow.wait_condition(
                        lambda: prediction_id in self._ended_predictions,
                        timeout=min(every, deadline - workflow.now()),
                    )
                    return
                except TimeoutError:
                    pass
                checks += 1
                try:
                    update = await workflow.execute_activity_method(
                        ClipActivities.check_prediction,
                        target,
                        task_queue=self._request.queues.clips(choice.provider),
                        start_to_close_timeout=policies.CHECK_TIMEOUT,
                        priority=self._priority,
                        retry_policy=policies.CHECK_RETRY,
                        summary=f"{clip.summary}: status read {checks}",
                        activity_id=f"{activity_id}-check-{checks}",
                    )
                except ActivityError as error:
                    workflow.logger.warning(
                        "clip %d: status read failed (%s); waiting on",
                        clip.clip_id,
                        describe_failure(error)[0],
                    )
                    continue
                if update.progress is not None:
                    clip.progress = max(clip.progress, min(99.9, update.progress))
                if update.ended:
                    return
        except asyncio.CancelledError:
            # Nobody wants the clip any more: stop paying for it upstream, then end.
            await workflow.execute_activity_method(
                ClipActivities.cancel_prediction,
                target,
                task_queue=self._request.queues.clips(choice.provider),
                start_to_close_timeout=policies.CHECK_TIMEOUT,
                priority=self._priority,
                retry_policy=policies.CHECK_RETRY,
                summary=f"{clip.summary}: cancel upstream",
            )
            raise

    async def _record_soon(self) -> None:
        """Write the record now, or (when a write is under way) once more right after it:
        a burst of clip submissions becomes two writes, not one per clip."""
        if self._record_busy:
            self._record_again = True
            return
        self._record_busy = True
        try:
            self._record_again = True
            while self._record_again:
                self._record_again = False
                await self._record()
        finally:
            self._record_busy = False

    def _end_clip(self, clip: ClipState) -> None:
        self._reserved -= self._reservations.pop(clip.clip_id, 0.0)
        self._running -= 1
        clip.ended_at = workflow.now()
        if clip.started_at is not None:
            seconds = (clip.ended_at - clip.started_at).total_seconds()
            self._state.clip_stage.sum_clip_seconds = round(
                self._state.clip_stage.sum_clip_seconds + seconds, 3
            )
        self._touch()

    async def _record(self, charge: Charge | None = None) -> None:
        """Write this milestone to the database; a failed write never fails the run."""
        user_id = self._request.user_id
        if user_id is None:
            return
        record = RecordInput(
            state=self._state, user_id=user_id, request=self._public_request, charge=charge
        )
        try:
            if self._light_records:
                await workflow.execute_local_activity_method(
                    RecordActivities.record_generation,
                    record,
                    start_to_close_timeout=policies.RECORD_TIMEOUT,
                    retry_policy=policies.RECORD_RETRY,
                    summary=f"record: {self._state.status.value}",
                )
                return
            await workflow.execute_activity_method(
                RecordActivities.record_generation,
                record,
                # The workflow's own queue: its worker takes the write at once (eagerly), not
                # behind the media queue's FFmpeg work. Earlier runs keep the media queue.
                task_queue=(
                    workflow.info().task_queue
                    if self._record_stages
                    else self._request.queues.media
                ),
                start_to_close_timeout=policies.RECORD_TIMEOUT,
                priority=self._priority,
                retry_policy=policies.RECORD_RETRY,
                summary=f"record: {self._state.status.value}",
            )
        except ActivityError as error:
            workflow.logger.warning("could not record %s: %s", self._state.status.value, error)

    async def _record_stage(self) -> None:
        """Record a change between milestones (a stage entered, retries taken), so readers of
        the record see it; runs started before RECORD_STAGES record milestones only."""
        if self._record_stages:
            await self._record()

    @property
    def _clip_timeout(self) -> timedelta:
        seconds = self._request.clip_timeout_seconds
        return timedelta(seconds=seconds) if seconds else policies.CLIP_TIMEOUT

    def _within_budget(self, clip: ClipState, scene: PlannedScene) -> bool:
        """Refuse to start a clip whose estimated cost would take the run over its budget."""
        budget = self._request.budget
        if budget is None:
            return True
        estimate = round(self._request.estimated_cost_per_second * scene.duration, 6)
        committed = self._state.cost + self._reserved
        if committed + estimate <= budget + 1e-9:
            self._reserved += estimate
            self._reservations[clip.clip_id] = estimate
            return True
        clip.status = ClipStatus.failed
        clip.error = (
            f"budget: this clip would cost about {estimate:.2f}, and {committed:.2f} of the "
            f"{budget:.2f} budget is already spent or committed"
        )
        workflow.logger.warning("clip %d not started: %s", clip.clip_id, clip.error)
        self._touch()
        return False

    def _take_retries(self) -> bool:
        """Launch the requested retries of failed clips; whether any was launched."""
        requests, self._retries = self._retries, []
        launched = False
        for request in requests:
            clip = self._state.clip(request.clip_id)
            if clip is None or clip.status is not ClipStatus.failed:
                workflow.logger.warning(
                    "ignoring retry of clip %d: %s",
                    request.clip_id,
                    "no such clip" if clip is None else f"it is {clip.status.value}",
                )
                continue
            if request.prompt:
                clip.prompt = request.prompt
            self._launch(clip)
            launched = True
        self._touch()
        return launched

    def _clips_ended(self) -> bool:
        return all(clip.status in CLIP_ENDED for clip in self._state.clips)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _enter(self, stage: Stage, status: GenerationStatus) -> None:
        self._close_stage()
        self._state.stage = stage
        self._state.timings.append(StageTiming(stage=stage, started_at=workflow.now()))
        self._set_status(status)

    def _close_stage(self) -> None:
        timings = self._state.timings
        if timings and timings[-1].ended_at is None:
            timings[-1].ended_at = workflow.now()

    def _set_status(self, status: GenerationStatus) -> None:
        changed = status is not self._state.status
        self._state.status = status
        self._touch()
        if changed and workflow.info().typed_search_attributes.get(STATUS_ATTR) is not None:
            workflow.upsert_search_attributes([STATUS_ATTR.value_set(status.value)])

    def _touch(self) -> None:
        state = self._state
        # Strictly increasing, even within one workflow task: the record keeps the newest state.
        now = workflow.now()
        previous = state.updated_at
        state.updated_at = now if previous is None or now > previous else previous + TICK
        lines = [f"**{state.title}**: {state.status.value}"]
        if state.stage is not None:
            lines[0] += f" ({state.stage.value})"
        for clip in state.clips:
            line = f"- clip {clip.clip_id}: {clip.status.value}"
            if clip.error:
                line += f": {clip.error}"
            lines.append(line)
        workflow.set_current_details("\n".join(lines))
