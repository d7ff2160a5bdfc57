"""``VideoGenerationWorkflow``: plan -> storyboard -> clips (parallel) -> assemble -> publish.

The class orchestrates: it issues the activities, waits for signals and keeps the state.
What it decides by rule lives in pure modules beside it, each tested on its own: ``budget``
(which clips may start), ``clips`` (a clip's providers, fallbacks and failures, and the
``ClipMaker`` that calls them), ``inputs`` and ``scenes`` (what each activity is given),
``metrics`` (where the time went), ``summary`` (what the Web UI shows). ``planner``,
``records`` and ``progress`` hold the plan call, the database record and the status
bookkeeping. The patch ids, and when each can go, are in ``patches``.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from storyreel.contracts import (
        CLIP_ENDED,
        PLATFORMS,
        WORKFLOW_NAME,
        Charge,
        ClipInput,
        ClipState,
        ClipStatus,
        GenerationInput,
        GenerationState,
        GenerationStatus,
        PlannedScene,
        PredictionSignal,
        RetryClipRequest,
        SceneEdit,
        Stage,
    )
    from storyreel.priority import task_priority
    from storyreel.quotes import Quote, refusal
    from workflows import media, planner
    from workflows.budget import Budget
    from workflows.clips import (
        ClipMaker,
        clip_failed,
        clip_made,
        describe_failure,
    )
    from workflows.inputs import clip_input, stitch_input, storyboard_input
    from workflows.metrics import close_clip_stage, count_clip, generation_metrics
    from workflows.notify import Notifier
    from workflows.patches import FINAL_OF_DRAFT, OWN_MATERIAL, PLAIN_PROMPT, PRICE_UNLISTED
    from workflows.planner import quote_scenes
    from workflows.progress import Progress
    from workflows.records import Recorder
    from workflows.scenes import edited_scenes, needs_redraw, planned_clips
    from workflows.summary import clip_prompt, clip_summary

DEFAULT_PARALLEL_CLIPS = 5


class GenerationFailure(Exception):
    """A reason to end the run as ``failed`` (raised and caught inside the workflow)."""


def _collect(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


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
            quality=request.quality,
            draft_of=request.draft_of,
        )
        self._retries: list[RetryClipRequest] = []
        self._finish_without_failed = False
        self._slots = asyncio.Semaphore(request.max_parallel_clips or DEFAULT_PARALLEL_CLIPS)
        self._running = 0
        self._waited = timedelta()
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._rounds: dict[int, int] = {}
        # How the provider bills the run's clips: the starter's pricing, until a model outside
        # the catalogue has been read (``_price``).
        self._pricing = request.clip_pricing
        self._budget = Budget(request.budget, request.estimated_cost_per_second, self._pricing)
        self._approved = False
        self._context = ""
        self._edits: list[SceneEdit] = []
        # Every activity carries the run's priority: a person's clips and stitching go before
        # batch work on a busy queue (runs from before requests had one inherit the default).
        self._priority = task_priority(request.priority, request.user_id)
        self._notifier = Notifier(request, self._state)
        self._progress = Progress(self._state, self._notifier.changed)
        self._records = Recorder(request, self._state, self._priority)
        self._clip_maker = ClipMaker(
            request, self._priority, self._progress.touch, self._records.soon
        )

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
        self._clip_maker.observe(self._state.clip(signal.clip_id), signal.update)

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
            self._records.begin()
            self._notifier.begin()
            await self._records.milestone()
            await self._plan()
            await self._storyboard()
            if self._request.review == "storyboard":
                await self._await_approval()
            await self._clips()
            await self._assemble()
            await self._records.milestone()
            await self._publish(GenerationStatus.completed)
            await self._notifier.settle()
        except asyncio.CancelledError:
            await self._end_cancelled()
            raise
        except (GenerationFailure, ActivityError) as error:
            if is_cancelled_exception(error):
                # The run was cancelled while one activity ran (e.g. assembly): the activity
                # comes back cancelled, and so does the run.
                await self._end_cancelled()
                raise
            message = describe_failure(error)[0] if isinstance(error, ActivityError) else str(error)
            await self._fail(message)
            raise ApplicationError(message, type="GenerationFailed", non_retryable=True) from None
        return self._state

    # -- stages --------------------------------------------------------------------------------

    async def _plan(self) -> None:
        self._progress.enter(Stage.plan, GenerationStatus.planning)
        await self._records.stage()
        request = self._request
        read = await self._read_model()
        plan = await planner.plan(request, self._state.generation_id, self._priority, self._pricing)
        self._state.scenes = list(plan.scenes)
        self._state.warnings.extend(plan.warnings)
        # The request's own context wins over the one the planner wrote.
        context = request.consistency_context.strip() or plan.consistency_context.strip()
        self._context = context
        # Runs begun before the patch keep the prompts (and clip cache keys) they started with.
        legacy = "" if context or workflow.patched(PLAIN_PROMPT) else "\n\n"
        self._state.clips = planned_clips(plan.scenes, context, legacy)
        quoted = self._requote()
        # The API held the request to its platform's limit and budget at the scenes' lengths;
        # a model read since is held to them at the seconds its provider will bill.
        if read and quoted is not None:
            limit = PLATFORMS[request.platform].max_duration
            problem = refusal(quoted, request.platform.value, limit, request.budget)
            if problem is not None:
                raise GenerationFailure(problem)

    async def _read_model(self) -> bool:
        """A model outside the catalogue, on a provider that publishes model schemas: read it
        on the provider's clip queue, as its clips will, and bill the run by what it makes
        (the plan is shaped toward those lengths, the quote and the budget count them);
        whether it was read. Nothing is paid for yet."""
        pricing = self._pricing
        if pricing is None or not pricing.discoverable or not workflow.patched(PRICE_UNLISTED):
            return False
        spec = await planner.describe(self._request, pricing, self._priority)
        if spec is None:
            return False
        self._pricing = pricing.described_by(spec, self._request.clip_audio != "drop")
        self._budget.pricing = self._pricing
        return True

    def _requote(self) -> Quote | None:
        """Price the scenes as the provider bills them (again after an edit)."""
        if self._pricing is not None:
            self._state.quote = quote_scenes(self._pricing, self._state.scenes)
            if self._request.final_pricing is not None:
                self._state.final_quote = quote_scenes(
                    self._request.final_pricing, self._state.scenes
                )
        return self._state.quote

    async def _storyboard(self) -> None:
        self._progress.enter(Stage.storyboard, GenerationStatus.storyboarding)
        await self._records.stage()
        given = self._request.storyboards
        if len(given) == len(self._state.scenes) and workflow.patched(FINAL_OF_DRAFT):
            # A final of a draft: its draft's storyboard, as reviewed, nothing drawn again.
            self._state.storyboard_keys = list(given)
            return
        # One image per scene, in order (gather keeps it): the clips take theirs by index.
        keys = await asyncio.gather(*(self._draw(scene) for scene in self._state.scenes))
        self._state.storyboard_keys = list(keys)

    async def _draw(self, scene: PlannedScene) -> str:
        """One scene's storyboard image; its storage key."""
        request, count = self._request, len(self._state.scenes)
        drawing = storyboard_input(request, self._state.generation_id, scene, count)
        result = await media.draw(request, drawing, self._priority)
        for warning in result.warnings:
            if warning not in self._state.warnings:
                self._state.warnings.append(warning)
        return result.key

    async def _await_approval(self) -> None:
        """Wait, durably and without paying for anything, until someone approves the
        storyboard; redraw the scenes they edit meanwhile."""
        window = timedelta(seconds=self._request.review_window_seconds)
        deadline = workflow.now() + window
        self._progress.set_status(GenerationStatus.awaiting_approval)
        await self._records.milestone()
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
                await self._records.milestone()
        self._progress.set_status(GenerationStatus.storyboarding)

    async def _apply(self, edit: SceneEdit) -> None:
        edited = edited_scenes(self._state.scenes, edit)
        if edited is None:
            workflow.logger.warning("ignoring an edit of scene %d: no such scene", edit.index)
            return
        old = self._state.scenes[edit.index - 1]
        scene, scenes = edited
        self._state.scenes = scenes
        clip = self._state.clips[edit.index - 1]
        clip.prompt = clip_prompt(self._context, scene.description, scene.cast)
        clip.summary = clip_summary(scene.index, len(scenes), scene.description)
        self._requote()
        if needs_redraw(old, scene):
            self._progress.touch()
            self._state.storyboard_keys[edit.index - 1] = await self._draw(scene)
        self._progress.touch()

    async def _clips(self) -> None:
        self._progress.enter(Stage.clips, GenerationStatus.generating)
        started = workflow.now()
        for clip in self._state.clips:
            self._launch(clip)
        try:
            await self._records.stage()
            await self._settle_clips()
        except asyncio.CancelledError:
            for task in self._tasks.values():
                task.cancel()
            # Wait for every clip activity to acknowledge, so its temp files and FFmpeg are gone.
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            raise
        close_clip_stage(self._state.clip_stage, workflow.now() - started, self._waited)
        self._progress.close_stage()

    async def _settle_clips(self) -> None:
        """Run until every clip is done, or the caller gives up on the failed ones."""
        while True:
            await workflow.wait_condition(lambda: bool(self._retries) or self._clips_ended())
            if self._take_retries():
                await self._records.stage()
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
        self._progress.set_status(GenerationStatus.awaiting_retry)
        await self._records.stage()
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
        self._progress.set_status(GenerationStatus.generating)

    async def _assemble(self) -> None:
        self._progress.enter(Stage.assemble, GenerationStatus.assembling)
        await self._records.stage()
        stitch = stitch_input(self._request, self._state)
        result = await media.stitch(self._request, stitch, self._priority)
        state = self._state
        state.video_key, state.thumbnail_key = result.key, result.thumbnail_key
        state.duration = result.duration
        state.assembly = result
        state.warnings.extend(result.warnings)
        self._progress.close_stage()

    async def _publish(self, final: GenerationStatus) -> None:
        self._progress.enter(Stage.publish, self._state.status)
        self._progress.close_stage()
        self._state.metrics = generation_metrics(self._state, self._waited, workflow.now())
        record = self._state.model_copy(deep=True)
        record.status = final
        await media.publish(self._request, record, self._priority)
        self._progress.set_status(final)
        await self._records.milestone()

    async def _publish_unfinished(self, final: GenerationStatus) -> None:
        """Publish the record of a run that did not complete, best effort (its outcome
        stands whether or not the record is written)."""
        try:
            await self._publish(final)
        except ActivityError:
            workflow.logger.warning("could not write the record of %s run", final.value)
        self._progress.set_status(final)

    async def _fail(self, message: str) -> None:
        self._state.error = message
        self._progress.close_stage()
        await self._publish_unfinished(GenerationStatus.failed)
        await self._notifier.settle()

    async def _end_cancelled(self) -> None:
        self._progress.close_stage()
        self._progress.set_status(GenerationStatus.cancelled)
        await self._publish_unfinished(GenerationStatus.cancelled)
        await self._notifier.settle()

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
        await self._records.milestone(charge)

    async def _run_clip_in_slot(self, clip: ClipState) -> Charge | None:
        """Make the clip once a slot is free and the budget allows; the charge to book."""
        scene = self._state.scenes[clip.clip_id - 1]
        round_ = self._rounds[clip.clip_id]
        if scene.asset is not None and workflow.patched(OWN_MATERIAL):
            return await self._use_asset(clip, scene, round_)
        async with self._slots:
            refusal = self._budget.reserve(clip.clip_id, scene.duration, self._state.cost)
            if refusal is not None:
                self._refuse(clip, refusal)
                return None
            clip_input = self._start_clip(clip, scene)
            charge: Charge | None = None
            try:
                result = await self._clip_maker.make(clip, clip_input, round_)
            except ActivityError as error:
                clip_failed(clip, error)
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
                charge = clip_made(self._state, clip, result, round_)
            self._end_clip(clip)
        return charge

    async def _use_asset(self, clip: ClipState, scene: PlannedScene, round_: int) -> Charge | None:
        """A scene of the caller's own video or image: made on the media queue, no provider,
        no slot, no budget; the charge (nothing) to book."""
        clip.status, clip.started_at, clip.ended_at = ClipStatus.processing, workflow.now(), None
        clip.provider, clip.model = "asset", "own"
        self._progress.touch()
        charge: Charge | None = None
        try:
            result = await self._clip_maker.own(self._state, clip, scene)
        except ActivityError as error:
            clip_failed(clip, error)
        else:
            charge = clip_made(self._state, clip, result, round_)
        clip.ended_at = workflow.now()
        self._progress.touch()
        return charge

    def _refuse(self, clip: ClipState, reason: str) -> None:
        """A clip the budget does not allow: failed without starting (a retry may fit)."""
        clip.status, clip.error = ClipStatus.failed, reason
        workflow.logger.warning("clip %d not started: %s", clip.clip_id, reason)
        self._progress.touch()

    def _start_clip(self, clip: ClipState, scene: PlannedScene) -> ClipInput:
        """Mark the clip under way; the input of its first provider's go."""
        clip.status, clip.started_at, clip.ended_at = ClipStatus.processing, workflow.now(), None
        self._running += 1
        metrics = self._state.clip_stage
        metrics.max_concurrent = max(metrics.max_concurrent, self._running)
        self._progress.touch()
        return clip_input(self._request, self._state, clip, scene)

    def _end_clip(self, clip: ClipState) -> None:
        self._budget.release(clip.clip_id)
        self._running -= 1
        clip.ended_at = workflow.now()
        count_clip(self._state.clip_stage, clip.started_at, clip.ended_at)
        self._progress.touch()

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
        self._progress.touch()
        return launched

    def _clips_ended(self) -> bool:
        return all(clip.status in CLIP_ENDED for clip in self._state.clips)
