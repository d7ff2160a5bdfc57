"""The content-addressed clip cache, per-clip cost and the per-generation budget."""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from activities.media.stitch import expected_duration
from storyreel.contracts import ClipStatus, GenerationStatus, SceneIn
from storyreel.settings import Price, Settings
from tests.fakes import SleepyProvider
from tests.workflows.conftest import (
    keep_history,
    request_for,
    running_worker,
    start,
    wait_for_state,
)


async def test_regenerating_one_scene_generates_only_that_scene(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    settings.prices["sleepy"] = Price(per_second=0.5)
    provider = SleepyProvider(prepared_clip, 0.3)
    first = request_for(3, "sleepy")
    scenes = list(first.scenes or [])
    scenes[1] = SceneIn(description="Scene 2, rewritten: the keeper sleeps in", duration=2)
    second = first.model_copy(update={"scenes": scenes, "title": "regenerated"})
    async with running_worker(client, settings, {"sleepy": provider}):
        handle = await start(client, settings, first)
        original = await handle.result()
        await keep_history(handle)
        assert len(provider.log.submits) == 3
        handle = await start(client, settings, second)
        regenerated = await handle.result()
        await keep_history(handle)

    assert original.status is regenerated.status is GenerationStatus.completed
    assert [clip.cost for clip in original.clips] == [1.0, 1.0, 1.0]
    assert original.cost == 3.0
    assert len(provider.log.submits) == 4, "only the changed scene may be generated again"
    assert provider.log.submits[-1][0] == 2
    statuses = [clip.status for clip in regenerated.clips]
    assert statuses == [ClipStatus.cached, ClipStatus.complete, ClipStatus.cached]
    assert [clip.cost for clip in regenerated.clips] == [0.0, 1.0, 0.0]
    assert regenerated.cost == 1.0
    # Three 2 s scenes joined by cuts.
    expected = expected_duration([2.0] * 3, 0)
    assert regenerated.duration is not None and abs(regenerated.duration - expected) < 0.2


async def test_the_cache_can_be_turned_off(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = SleepyProvider(prepared_clip, 0.1)
    request = request_for(2, "sleepy", use_cache=False)
    async with running_worker(client, settings, {"sleepy": provider}):
        for _ in range(2):
            handle = await start(client, settings, request)
            assert (await handle.result()).status is GenerationStatus.completed
    assert len(provider.log.submits) == 4


async def test_a_budget_stops_clips_before_they_start(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    settings.prices["sleepy"] = Price(per_second=0.5)  # 2 s clips: about 1.0 each
    provider = SleepyProvider(prepared_clip, 0.5)
    async with running_worker(client, settings, {"sleepy": provider}):
        handle = await start(client, settings, request_for(3, "sleepy", budget=2.5))
        state = await wait_for_state(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        await handle.signal("finish_without_failed")
        final = await handle.result()
        await keep_history(handle)

    refused = [clip for clip in state.clips if clip.status is ClipStatus.failed]
    assert len(refused) == 1 and refused[0].attempts == 0
    assert refused[0].error is not None and "2.50 budget" in refused[0].error
    assert len(provider.log.submits) == 2, "a clip over budget was started"
    assert final.status is GenerationStatus.completed and final.cost == 2.0
    assert final.budget == 2.5
