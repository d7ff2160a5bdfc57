"""Timeouts and retry policies, one set per activity type."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from storyreel.errors import NON_RETRYABLE_TYPES


def retry(
    attempts: int,
    most: float | None = None,
    first: float = 1.0,
    permanent: Sequence[str] = NON_RETRYABLE_TYPES,
) -> RetryPolicy:
    """Exponential backoff (x2) from ``first`` seconds, capped at ``most`` (default: the
    server's 100 x ``first``), ``attempts`` in all (0: no limit); the ``permanent`` error types
    (storyreel's, by default) end it."""
    return RetryPolicy(
        initial_interval=timedelta(seconds=first),
        backoff_coefficient=2.0,
        maximum_interval=None if most is None else timedelta(seconds=most),
        maximum_attempts=attempts,
        non_retryable_error_types=permanent,
    )


PLAN_TIMEOUT = timedelta(seconds=30)
PLAN_RETRY = retry(3)

# One chat completion per attempt; a malformed or schema-invalid answer is retried, then the
# plan fails with what was wrong. A 429 waits as long as the endpoint's Retry-After.
LLM_PLAN_TIMEOUT = timedelta(minutes=2)
LLM_PLAN_RETRY = retry(3, most=20)

STORYBOARD_TIMEOUT = timedelta(minutes=2)
STORYBOARD_RETRY = retry(4, most=20)

# A clip may take minutes upstream; a silent worker is noticed within the heartbeat timeout
# and the next attempt resumes the heartbeated prediction.
CLIP_TIMEOUT = timedelta(minutes=10)
CLIP_HEARTBEAT = timedelta(seconds=20)
CLIP_RETRY = retry(3, most=30)

# With webhooks a clip is three short activities around a wait that holds no worker: submit
# (create the prediction), an occasional status read, and the copy of the finished output.
# Generous: an attempt cut short after its create went out (a slow, overloaded worker) would
# make the next attempt create again; a crashed worker's attempt is retried after this long.
SUBMIT_TIMEOUT = timedelta(minutes=5)
CHECK_TIMEOUT = timedelta(seconds=30)
CHECK_RETRY = retry(3, most=10)

# A model outside the catalogue, read from its provider's published schema before the first
# clip (one GET; the client backs off on 429s and 5xx itself).
DESCRIBE_TIMEOUT = timedelta(minutes=1)
DESCRIBE_RETRY = retry(4, most=20)

# A scene of the caller's own material: their video cut to the scene, or their image panned.
OWN_CLIP_TIMEOUT = timedelta(minutes=10)
OWN_CLIP_RETRY = retry(3, most=30)

STITCH_TIMEOUT = timedelta(minutes=15)
# Assembly heartbeats on every FFmpeg progress line and between scenes' speech; its longest
# silence is one TTS call, which settings.tts_timeout_seconds caps at 45 s.
STITCH_HEARTBEAT = timedelta(seconds=60)
STITCH_RETRY = retry(3, most=30, first=2)

# Records are idempotent upserts: retry generously, the database may be restarting.
RECORD_TIMEOUT = timedelta(seconds=30)
RECORD_RETRY = retry(10, most=30)

PUBLISH_TIMEOUT = timedelta(minutes=1)
PUBLISH_RETRY = retry(10, most=30)

# Batches: their bookkeeping is a quick write on the workflow's own queue.
BATCH_RECORD_TIMEOUT = timedelta(seconds=30)
BATCH_RECORD_RETRY = RECORD_RETRY
# A batch whose owner is at their running limit looks again this often (or as soon as one of
# its own generations ends).
BATCH_SLOT_RECHECK = timedelta(seconds=10)

# Outbound webhooks: one POST per attempt (10 s, plus the DNS lookup and two record writes).
# Exponential backoff from the starter's first wait (STORYREEL_WEBHOOK_RETRY_INITIAL_SECONDS,
# 5 s by default), doubling up to an hour, for 25 hours: at least 24 h of retries, ~35 tries.
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_WINDOW = timedelta(hours=25)
NOTIFY_MOST_INTERVAL = timedelta(hours=1)


def notify_retry(first: float) -> RetryPolicy:
    """Until delivered or ``NOTIFY_WINDOW`` has passed; a refused target ends it at once."""
    most = NOTIFY_MOST_INTERVAL.total_seconds()
    return retry(0, most=most, first=first, permanent=["TargetRefusedError"])
