"""Making one clip: its provider first, then the request's fallback chain.

``ClipMaker`` issues the clip's activities and waits (workflow side); the functions above it
decide, with no workflow calls, and are tested on their own: which failure moves a clip to
the next provider, how long to wait before a status read, how many attempts a failure used,
and what a result or a failure does to the clip's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState
from temporalio.exceptions import TimeoutError as ActivityTimeoutError

with workflow.unsafe.imports_passed_through():
    from activities.clips import ClipActivities
    from activities.own import OwnMaterialActivities
    from storyreel.contracts import (
        CLIP_ACTIVITY_PREFIX,
        CLIP_DONE,
        Charge,
        CheckInput,
        ClipInput,
        ClipResult,
        ClipState,
        ClipStatus,
        ClipTry,
        GenerationInput,
        GenerationState,
        OwnClipInput,
        PlannedScene,
        PredictionUpdate,
        ProviderChoice,
    )
    from storyreel.errors import FALLBACK_TYPES
    from workflows import policies
    from workflows.media import on_media

_Answer = TypeVar("_Answer")

# A clip shows 100 % only once its file is stored.
_MOST_BEFORE_DONE = 99.9


def clip_activity_id(clip_id: int, round_: int, fallback: str | None = None) -> str:
    """Readable ids let the API match live heartbeats to their clip: ``clip-<id>-<round>``,
    and ``-<provider>`` for a fallback provider's go."""
    activity_id = f"{CLIP_ACTIVITY_PREFIX}{clip_id}-{round_}"
    return f"{activity_id}-{fallback}" if fallback else activity_id


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
    """How many attempts a failed activity took: as its error says, else all of them when
    it ran out, else one."""
    _, attempt = describe_failure(error)
    if attempt is not None:
        return attempt
    if error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return retry.maximum_attempts
    return 1


def provider_chain(request: GenerationInput) -> list[ProviderChoice]:
    """The request's provider, then its fallbacks in order."""
    return [ProviderChoice(provider=request.provider, model=request.model), *request.fallback]


def moves_on(error: ActivityError, index: int, chain: list[ProviderChoice]) -> bool:
    """Whether a failure of ``chain[index]`` sends the clip to the next provider: only
    failures another provider may not have (refused, failed after retries, throttled), and
    only while there is a next one."""
    return index + 1 < len(chain) and failure_type(error) in FALLBACK_TYPES


def wait_before_check(now: datetime, deadline: datetime, every: timedelta) -> timedelta | None:
    """How long to wait for the provider's call before the next status read; None once the
    clip timeout has passed (the copy activity then polls the prediction to its end)."""
    if now >= deadline:
        return None
    return min(every, deadline - now)


def raise_progress(clip: ClipState, progress: float) -> None:
    """Progress only moves forward, and stops short of 100 until the clip is stored."""
    clip.progress = max(clip.progress, min(_MOST_BEFORE_DONE, progress))


def clip_made(state: GenerationState, clip: ClipState, result: ClipResult, round_: int) -> Charge:
    """Enter a made clip in the state; the charge the ledger books for this round."""
    clip.status = ClipStatus.cached if result.cached else ClipStatus.complete
    clip.progress = 100.0
    clip.key, clip.duration = result.key, result.duration
    clip.media = result.media
    clip.cost = round(clip.cost + result.cost, 6)
    state.cost = round(state.cost + result.cost, 6)
    charge = Charge(
        clip_id=clip.clip_id,
        amount=result.cost,
        key=f"{state.generation_id}/clip-{clip.clip_id}/round-{round_}",
        billed_seconds=result.billed_seconds,
    )
    clip.prediction_id, clip.render_seconds = result.prediction_id, result.render_seconds
    clip.attempts += result.attempt
    for warning in result.warnings:
        if warning not in state.warnings:
            state.warnings.append(warning)
    return charge


def clip_failed(clip: ClipState, error: ActivityError) -> None:
    """Enter a clip that every provider failed to make: it awaits a retry."""
    clip.status = ClipStatus.failed
    clip.error = describe_failure(error)[0]
    clip.attempts += attempts_used(error, policies.CLIP.retry)


def failed_try(clip: ClipState, choice: ProviderChoice, message: str) -> ClipTry:
    return ClipTry(
        provider=choice.provider,
        model=choice.model,
        status=ClipStatus.failed,
        error=message,
        prediction_id=clip.prediction_id,
    )


def made_try(choice: ProviderChoice, result: ClipResult) -> ClipTry:
    return ClipTry(
        provider=choice.provider,
        model=choice.model,
        status=ClipStatus.cached if result.cached else ClipStatus.complete,
        cost=result.cost,
        prediction_id=result.prediction_id,
    )


class ClipMaker:
    """The workflow's clip-making: each provider's go at a clip, polled to the end or (with
    webhooks) submitted, waited for without holding a worker, then copied.

    ``ended`` holds the predictions a verified webhook said have ended (ids, so early and
    repeated deliveries are as harmless as late ones); ``touch`` marks the state changed and
    ``record_soon`` writes it (both belong to the workflow).
    """

    def __init__(
        self,
        request: GenerationInput,
        priority: Priority,
        touch: Callable[[], None],
        record_soon: Callable[[], Awaitable[None]],
    ) -> None:
        self._request = request
        self._priority = priority
        self._touch = touch
        self._record_soon = record_soon
        self.ended: set[str] = set()

    def observe(self, clip: ClipState | None, update: PredictionUpdate) -> None:
        """A provider's verified call about a prediction: the clip following it (if any)
        shows its progress, and an ended prediction ends the wait for it."""
        if clip is not None and clip.prediction_id == update.prediction_id:
            if update.progress is not None and clip.status not in CLIP_DONE:
                raise_progress(clip, update.progress)
        if update.ended:
            self.ended.add(update.prediction_id)

    @property
    def timeout(self) -> timedelta:
        seconds = self._request.clip_timeout_seconds
        return timedelta(seconds=seconds) if seconds else policies.CLIP.timeout

    async def own(self, state: GenerationState, clip: ClipState, scene: PlannedScene) -> ClipResult:
        """The clip of a scene showing the caller's own video or image (``scene.asset``),
        made on the media queue by ``use_asset``; ``ActivityError`` when it cannot be."""
        assert scene.asset is not None
        request = OwnClipInput(
            generation_id=state.generation_id,
            clip_id=clip.clip_id,
            asset=scene.asset,
            duration=scene.duration,
            platform=self._request.platform,
            clip_audio=self._request.clip_audio,
        )
        result: ClipResult = await workflow.execute_activity_method(
            OwnMaterialActivities.use_asset,
            request,
            **on_media(
                self._request,
                self._priority,
                policies.OWN_CLIP,
                f"own material for scene {clip.clip_id}",
            ),
        )
        return result

    async def make(self, clip: ClipState, clip_input: ClipInput, round_: int) -> ClipResult:
        """The clip from its provider, or from the next one of the request's fallback chain
        when the provider cannot deliver it; ``clip_input`` is the first provider's input."""
        fallback = bool(self._request.fallback)
        chain = provider_chain(self._request)
        for index, choice in enumerate(chain):
            clip.provider, clip.model = choice.provider, choice.model
            activity_id = clip_activity_id(clip.clip_id, round_, choice.provider if index else None)
            attempt = clip_input.model_copy(
                update={"provider": choice.provider, "model": choice.model}
            )
            try:
                result = await self._from(clip, attempt, activity_id)
            except ActivityError as error:
                if not fallback:
                    raise
                message = describe_failure(error)[0]
                clip.tries.append(failed_try(clip, choice, message))
                if not moves_on(error, index, chain):
                    raise
                clip.attempts += attempts_used(error, policies.CLIP.retry)
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
            if fallback:
                clip.tries.append(made_try(choice, result))
            return result
        raise AssertionError("a fallback chain is never empty")

    async def _from(self, clip: ClipState, clip_input: ClipInput, activity_id: str) -> ClipResult:
        """One provider's go at the clip."""
        request = self._request
        queue = request.queues.clips(clip_input.provider)
        if request.webhook_url:
            submitted = await workflow.execute_activity_method(
                ClipActivities.submit_clip,
                clip_input.model_copy(update={"webhook_url": request.webhook_url}),
                **policies.SUBMIT.options(
                    task_queue=queue,
                    priority=self._priority,
                    summary=f"{clip.summary}: submit",
                    activity_id=f"{activity_id}-submit",
                ),
            )
            if submitted.cached is not None:
                return submitted.cached
            clip.prediction_id = submitted.prediction_id
            clip_input.prediction_id = submitted.prediction_id
            if submitted.calls_back and submitted.prediction_id:
                target = CheckInput(
                    provider=clip_input.provider,
                    model=clip_input.model,
                    prediction_id=submitted.prediction_id,
                )
                await self._await_call(clip, target, activity_id)
        return await workflow.execute_activity_method(
            ClipActivities.generate_clip,
            clip_input,
            task_queue=queue,
            start_to_close_timeout=self.timeout,
            priority=self._priority,
            heartbeat_timeout=policies.CLIP.heartbeat,
            retry_policy=policies.CLIP.retry,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            summary=clip.summary,
            activity_id=activity_id,
        )

    async def _await_call(self, clip: ClipState, target: CheckInput, activity_id: str) -> None:
        """Wait (durably, holding no worker) until the provider says the prediction ended, with
        a slow status read now and then in case its call was lost. Past the clip timeout the
        copy activity polls it to the end: a paid prediction is never abandoned."""
        self._touch()
        await self._record_soon()
        prediction_id = target.prediction_id
        every = timedelta(seconds=self._request.fallback_poll_seconds)
        deadline = workflow.now() + self.timeout
        checks = 0
        try:
            while prediction_id not in self.ended:
                wait = wait_before_check(workflow.now(), deadline, every)
                if wait is None:
                    return
                try:
                    await workflow.wait_condition(lambda: prediction_id in self.ended, timeout=wait)
                    return
                except TimeoutError:
                    pass
                checks += 1
                try:
                    update = await self._on_prediction(
                        ClipActivities.check_prediction,
                        target,
                        f"{clip.summary}: status read {checks}",
                        f"{activity_id}-check-{checks}",
                    )
                except ActivityError as error:
                    workflow.logger.warning(
                        "clip %d: status read failed (%s); waiting on",
                        clip.clip_id,
                        describe_failure(error)[0],
                    )
                    continue
                if update.progress is not None:
                    raise_progress(clip, update.progress)
                if update.ended:
                    return
        except asyncio.CancelledError:
            # Nobody wants the clip any more: stop paying for it upstream, then end.
            await self._on_prediction(
                ClipActivities.cancel_prediction, target, f"{clip.summary}: cancel upstream"
            )
            raise

    async def _on_prediction(
        self,
        call: Callable[[ClipActivities, CheckInput], Awaitable[_Answer]],
        target: CheckInput,
        summary: str,
        activity_id: str | None = None,
    ) -> _Answer:
        """A quick call about one upstream prediction (a status read, a cancel), on its
        provider's clip queue."""
        return await workflow.execute_activity_method(
            call,
            target,
            **policies.CHECK.options(
                task_queue=self._request.queues.clips(target.provider),
                priority=self._priority,
                summary=summary,
                activity_id=activity_id,
            ),
        )
