"""Timeouts and retry policies, one ``Policy`` per activity type."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from typing_extensions import Unpack

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


@dataclass(frozen=True)
class Policy:
    """How one activity type runs: how long an attempt may take, how failed attempts are
    retried and, for long work, how long it may stay silent before its worker counts as lost."""

    timeout: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None

    def options(self, **more: Unpack[workflow.ActivityConfig]) -> workflow.ActivityConfig:
        """The activity options it stands for with ``more`` (the queue, the summary...), to
        spread into ``execute_activity``."""
        return {
            "start_to_close_timeout": self.timeout,
            "heartbeat_timeout": self.heartbeat,
            "retry_policy": self.retry,
            **more,
        }

    def local_options(
        self, **more: Unpack[workflow.LocalActivityConfig]
    ) -> workflow.LocalActivityConfig:
        """The same for a local activity (which heartbeats nothing)."""
        return {"start_to_close_timeout": self.timeout, "retry_policy": self.retry, **more}


PLAN = Policy(timedelta(seconds=30), retry(3))

# One chat completion per attempt; a malformed or schema-invalid answer is retried, then the
# plan fails with what was wrong. A 429 waits as long as the endpoint's Retry-After.
LLM_PLAN = Policy(timedelta(minutes=2), retry(3, most=20))

STORYBOARD = Policy(timedelta(minutes=2), retry(4, most=20))

# A clip may take minutes upstream; a silent worker is noticed within the heartbeat timeout
# and the next attempt resumes the heartbeated prediction. A request's clip_timeout_seconds
# replaces the timeout.
CLIP = Policy(timedelta(minutes=10), retry(3, most=30), heartbeat=timedelta(seconds=20))

# With webhooks a clip is three short activities around a wait that holds no worker: submit
# (create the prediction), an occasional status read, and the copy of the finished output.
# Generous: an attempt cut short after its create went out (a slow, overloaded worker) would
# make the next attempt create again; a crashed worker's attempt is retried after this long.
SUBMIT = Policy(timedelta(minutes=5), CLIP.retry)
CHECK = Policy(timedelta(seconds=30), retry(3, most=10))

# A model outside the catalogue, read from its provider's published schema before the first
# clip (one GET; the client backs off on 429s and 5xx itself).
DESCRIBE = Policy(timedelta(minutes=1), retry(4, most=20))

# A scene of the caller's own material: their video cut to the scene, or their image panned.
OWN_CLIP = Policy(timedelta(minutes=10), retry(3, most=30))

# Assembly heartbeats on every FFmpeg progress line and between scenes' speech; its longest
# silence is one TTS call, which settings.tts_timeout_seconds caps at 45 s.
STITCH = Policy(timedelta(minutes=15), retry(3, most=30, first=2), heartbeat=timedelta(seconds=60))

# Records are idempotent upserts: retry generously, the database may be restarting.
RECORD = Policy(timedelta(seconds=30), retry(10, most=30))
PUBLISH = Policy(timedelta(minutes=1), retry(10, most=30))

# Batches: their bookkeeping is a quick write on the workflow's own queue.
BATCH_RECORD = RECORD
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
