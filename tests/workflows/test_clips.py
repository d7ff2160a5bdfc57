"""The clip-making decisions, without a server: which failure moves a clip on, when to read a
prediction's status, how many attempts a failure used, what a result or failure records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.common import Priority
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from storyreel.contracts import (
    ClipResult,
    ClipState,
    ClipStatus,
    GenerationState,
    Platform,
    PredictionUpdate,
    ProviderChoice,
)
from tests.workflows.conftest import request_for
from workflows import policies
from workflows.clips import (
    ClipMaker,
    attempts_used,
    clip_activity_id,
    clip_failed,
    clip_made,
    describe_failure,
    failure_type,
    moves_on,
    provider_chain,
    raise_progress,
    wait_before_check,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def activity_error(
    cause: BaseException | None, retry_state: RetryState | None = None
) -> ActivityError:
    error = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="worker",
        activity_type="generate_clip",
        activity_id="clip-1-1",
        retry_state=retry_state,
    )
    error.__cause__ = cause
    return error


def refused(attempt: int | None = None) -> ActivityError:
    details = [{"attempt": attempt}] if attempt is not None else []
    return activity_error(
        ApplicationError("flagged as sensitive", *details, type="ProviderRefusedError")
    )


CHAIN = [ProviderChoice(provider="a", model="m"), ProviderChoice(provider="b", model="n")]


def test_activity_ids_name_the_clip_round_and_fallback_provider() -> None:
    assert clip_activity_id(3, 2) == "clip-3-2"
    assert clip_activity_id(3, 2, "backup") == "clip-3-2-backup"


def test_a_refusal_moves_on_while_a_next_provider_exists() -> None:
    assert moves_on(refused(), 0, CHAIN)
    assert not moves_on(refused(), 1, CHAIN), "the last provider has nowhere to move to"


def test_timeouts_and_plain_failures_do_not_move_a_clip() -> None:
    timeout = activity_error(
        TimeoutError("late", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
    )
    bug = activity_error(ApplicationError("boom", type="ValueError"))
    assert failure_type(timeout) is None and not moves_on(timeout, 0, CHAIN)
    assert failure_type(bug) == "ValueError" and not moves_on(bug, 0, CHAIN)
    throttled = activity_error(ApplicationError("429", type="ProviderThrottledError"))
    assert moves_on(throttled, 0, CHAIN)


def test_describe_failure_reads_the_message_attempt_and_timeout_kind() -> None:
    assert describe_failure(refused(2)) == ("flagged as sensitive", 2)
    timeout = TimeoutError("late", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[])
    assert describe_failure(activity_error(timeout)) == ("timed out (heartbeat)", None)
    assert describe_failure(activity_error(None)) == ("activity failed", None)


def test_attempts_used_prefers_the_error_then_the_policy_then_one() -> None:
    assert attempts_used(refused(2), policies.CLIP.retry) == 2
    exhausted = activity_error(
        ApplicationError("503", type="ProviderError"), RetryState.MAXIMUM_ATTEMPTS_REACHED
    )
    assert attempts_used(exhausted, policies.CLIP.retry) == policies.CLIP.retry.maximum_attempts
    assert attempts_used(refused(), policies.CLIP.retry) == 1


def test_status_reads_wait_the_poll_interval_then_stop_at_the_deadline() -> None:
    every = timedelta(seconds=60)
    assert wait_before_check(NOW, NOW + timedelta(minutes=10), every) == every
    assert wait_before_check(NOW, NOW + timedelta(seconds=5), every) == timedelta(seconds=5)
    assert wait_before_check(NOW, NOW, every) is None
    assert wait_before_check(NOW + timedelta(seconds=1), NOW, every) is None


def test_progress_only_moves_forward_and_stops_short_of_done() -> None:
    clip = ClipState(clip_id=1, progress=40.0)
    raise_progress(clip, 30.0)
    assert clip.progress == 40.0
    raise_progress(clip, 100.0)
    assert clip.progress == 99.9


def test_the_chain_is_the_provider_then_its_fallbacks() -> None:
    request = request_for(1, "a", model="m", fallback=[CHAIN[1]])
    assert provider_chain(request) == CHAIN


def test_a_made_clip_adds_its_cost_and_charges_its_round() -> None:
    state = GenerationState(
        generation_id="g1", title="t", platform=Platform.youtube, provider="a", cost=0.5
    )
    clip = ClipState(clip_id=2, attempts=1, cost=0.25)
    result = ClipResult(
        clip_id=2, key="clips/2.mp4", duration=2.0, render_seconds=3.0, attempt=2, cost=0.4
    )
    charge = clip_made(state, clip, result, 3)
    assert (clip.status, clip.progress, clip.key, clip.attempts) == (
        ClipStatus.complete,
        100.0,
        "clips/2.mp4",
        3,
    )
    assert clip.cost == pytest.approx(0.65) and state.cost == pytest.approx(0.9)
    assert (charge.amount, charge.key) == (0.4, "g1/clip-2/round-3")
    cached = ClipResult(clip_id=2, key="k", duration=2.0, render_seconds=0.0, cached=True)
    clip_made(state, clip, cached, 4)
    assert clip.status is ClipStatus.cached


def test_a_failed_clip_keeps_the_reason_and_counts_its_attempts() -> None:
    clip = ClipState(clip_id=1, attempts=1)
    clip_failed(clip, refused(2))
    assert (clip.status, clip.error, clip.attempts) == (
        ClipStatus.failed,
        "flagged as sensitive",
        3,
    )


async def _no_record() -> None:
    return None


def test_a_call_moves_the_followed_clip_and_ends_the_wait_once_ended() -> None:
    request = request_for(1, "a")
    maker = ClipMaker(request, Priority(), lambda: None, _no_record)
    clip = ClipState(clip_id=1, status=ClipStatus.processing, prediction_id="p1", progress=10.0)
    maker.observe(clip, PredictionUpdate(prediction_id="p1", phase="running", progress=50.0))
    assert clip.progress == 50.0 and not maker.ended
    maker.observe(clip, PredictionUpdate(prediction_id="old", phase="running", progress=90.0))
    assert clip.progress == 50.0, "a call about another prediction does not move this clip"
    maker.observe(None, PredictionUpdate(prediction_id="p0", phase="succeeded"))
    maker.observe(clip, PredictionUpdate(prediction_id="p1", phase="succeeded", progress=100))
    assert maker.ended == {"p0", "p1"} and clip.progress == 99.9
    done = ClipState(clip_id=2, status=ClipStatus.complete, prediction_id="p2", progress=100.0)
    maker.observe(done, PredictionUpdate(prediction_id="p2", phase="running", progress=20.0))
    assert done.progress == 100.0, "a made clip's progress stays at 100"
