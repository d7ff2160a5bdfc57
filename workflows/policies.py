"""Timeouts and retry policies, one set per activity type."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from storyreel.errors import NON_RETRYABLE_TYPES

PLAN_TIMEOUT = timedelta(seconds=30)
PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# One chat completion per attempt; a malformed or schema-invalid answer is retried, then the
# plan fails with what was wrong. A 429 waits as long as the endpoint's Retry-After.
LLM_PLAN_TIMEOUT = timedelta(minutes=2)
LLM_PLAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

STORYBOARD_TIMEOUT = timedelta(minutes=2)
STORYBOARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=4,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# A clip may take minutes upstream; a silent worker is noticed within the heartbeat timeout
# and the next attempt resumes the heartbeated prediction.
CLIP_TIMEOUT = timedelta(minutes=10)
CLIP_HEARTBEAT = timedelta(seconds=20)
CLIP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# With webhooks a clip is three short activities around a wait that holds no worker: submit
# (create the prediction), an occasional status read, and the copy of the finished output.
# Generous: an attempt cut short after its create went out (a slow, overloaded worker) would
# make the next attempt create again; a crashed worker's attempt is retried after this long.
SUBMIT_TIMEOUT = timedelta(minutes=5)
CHECK_TIMEOUT = timedelta(seconds=30)
CHECK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

STITCH_TIMEOUT = timedelta(minutes=15)
# Assembly heartbeats on every FFmpeg progress line and between scenes' speech; its longest
# silence is one TTS call, which settings.tts_timeout_seconds caps at 45 s.
STITCH_HEARTBEAT = timedelta(seconds=60)
STITCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# Records are idempotent upserts: retry generously, the database may be restarting.
RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

PUBLISH_TIMEOUT = timedelta(minutes=1)
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=NON_RETRYABLE_TYPES,
)

# Batches: their bookkeeping is a quick write on the workflow's own queue.
BATCH_RECORD_TIMEOUT = timedelta(seconds=30)
BATCH_RECORD_RETRY = RECORD_RETRY
# A batch whose owner is at their running limit looks again this often (or as soon as one of
# its own generations ends).
BATCH_SLOT_RECHECK = timedelta(seconds=10)
