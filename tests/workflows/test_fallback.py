"""Fallback chains: a clip its provider cannot make moves to the next provider of the chain."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from storyreel.contracts import ClipStatus, GenerationStatus, ProviderChoice
from storyreel.settings import Settings
from tests.fakes import FlakyProvider, RefusingProvider, SleepyProvider
from tests.workflows.conftest import (
    keep_history,
    request_for,
    running_worker,
    start,
    wait_for_state,
)


async def test_a_refused_clip_is_made_by_the_next_provider(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    strict = RefusingProvider(prepared_clip, 0.2, refused={2})
    backup = SleepyProvider(prepared_clip, 0.2)
    chain = [ProviderChoice(provider="backup", model="backup/video-1")]
    async with running_worker(client, settings, {"strict": strict, "backup": backup}):
        handle = await start(client, settings, request_for(3, "strict", fallback=chain))
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed
    assert [clip.status for clip in state.clips] == [ClipStatus.complete] * 3
    assert [clip.provider for clip in state.clips] == ["strict", "backup", "strict"]
    moved = state.clips[1]
    assert moved.model == "backup/video-1"
    assert [(t.provider, t.status) for t in moved.tries] == [
        ("strict", ClipStatus.failed),
        ("backup", ClipStatus.complete),
    ]
    assert moved.tries[0].error is not None and "flagged as sensitive" in moved.tries[0].error
    assert [job for job, _ in backup.log.submits] == [2], "only the refused clip moved"


async def test_a_clip_failing_everywhere_waits_for_a_retry_with_every_try_listed(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    first = FlakyProvider(prepared_clip, 0.1, failing={1})
    second = RefusingProvider(prepared_clip, 0.1, refused={1})
    chain = [ProviderChoice(provider="second", model="m2")]
    async with running_worker(client, settings, {"first": first, "second": second}):
        handle = await start(client, settings, request_for(2, "first", fallback=chain))
        state = await wait_for_state(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        await handle.cancel()

    failed = state.clips[0]
    assert failed.status is ClipStatus.failed
    assert [t.provider for t in failed.tries] == ["first", "second"]
    # The first provider used its three attempts before the clip moved on.
    assert failed.attempts == 3 + 1
    assert state.clips[1].status is ClipStatus.complete and state.clips[1].provider == "first"
