"""The generation workflow end to end on the real Temporal dev server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.media import ffmpeg
from activities.media.stitch import expected_duration
from storyreel.contracts import ClipStatus, GenerationState, GenerationStatus, Platform, Stage
from storyreel.keys import record_key
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from storyreel.temporal import STATUS_ATTR
from tests.conftest import temporal_cli
from tests.fakes import DiesOnceProvider, FlakyProvider, SleepyProvider
from tests.workflows.conftest import (
    AS_DEPLOYED,
    keep_history,
    request_for,
    running_worker,
    scenes,
    start,
    wait_for_state,
)


async def test_five_scenes_become_one_video(client: Client, settings: Settings) -> None:
    request = request_for(5, "local", platform=Platform.tiktok, **AS_DEPLOYED)
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        state = await handle.result()
        await keep_history(handle)
        description = await handle.describe()
        static_summary = await description.static_summary()

    storage = LocalStorage(settings.media_dir)
    assert state.status is GenerationStatus.completed
    assert len(state.storyboard_keys) == 5
    assert all(storage.exists(key) for key in state.storyboard_keys)
    assert [clip.clip_id for clip in state.clips] == [1, 2, 3, 4, 5]
    for clip in state.clips:
        assert clip.status is ClipStatus.complete and clip.progress == 100
        assert clip.prompt.startswith("Watercolour, soft light\n\nSCENE: Scene ")
        assert clip.key is not None
        info = ffmpeg.probe(storage.path(clip.key))
        assert (info.width, info.height, info.video_codec) == (1080, 1920, "h264")
        assert info.duration == pytest.approx(2.0, abs=0.1)

    assert state.video_key is not None and state.thumbnail_key is not None
    video = ffmpeg.probe(storage.path(state.video_key))
    # The default 0.5 s crossfade overlaps neighbours: 5 x 2 s - 4 x 0.5 s.
    assert video.duration == pytest.approx(expected_duration([2.0] * 5, 0.5), abs=0.2)
    assert (video.width, video.height, video.video_codec) == (1080, 1920, "h264")
    assert video.audio_codec == "aac"
    assert storage.exists(state.thumbnail_key)

    assert [timing.stage for timing in state.timings] == list(Stage)
    assert all(timing.ended_at is not None for timing in state.timings)
    assert state.clip_stage.sum_clip_seconds > 0 and state.clip_stage.speedup is not None
    record = json.loads(storage.path(record_key(state.generation_id)).read_text())
    assert record["status"] == "completed" and len(record["clips"]) == 5
    assert description.typed_search_attributes.get(STATUS_ATTR) == "completed"
    assert static_summary == f"{request.title} (tiktok, local)"
    # Readable in the Web UI: each clip activity carries a summary.
    history = await handle.fetch_history()
    summaries = set()
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes") and event.HasField(
            "user_metadata"
        ):
            payload = event.user_metadata.summary
            summaries.add((await client.data_converter.decode([payload]))[0])
    assert "clip 3/5: Scene 3: a lighthouse keeper counts waves" in summaries
    # Temp files are removed on success.
    assert list((settings.data_dir / "tmp").iterdir()) == []


async def test_clips_run_at_the_same_time(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    seconds = 3.0
    provider = SleepyProvider(prepared_clip, seconds)
    async with running_worker(client, settings, {"sleepy": provider}):
        handle = await start(client, settings, request_for(5, "sleepy"))
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed
    spans = provider.log.spans
    assert len(spans) == 5
    wall = max(end for _, _, end in spans) - min(start for _, start, _ in spans)
    assert wall < 1.5 * seconds, f"5 clips of {seconds} s took {wall:.2f} s"
    assert provider.log.max_running == 5
    assert state.clip_stage.max_concurrent == 5


async def test_max_parallel_clips_bounds_concurrency(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = SleepyProvider(prepared_clip, 1.0)
    async with running_worker(client, settings, {"sleepy": provider}):
        handle = await start(client, settings, request_for(5, "sleepy", max_parallel_clips=2))
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed
    assert provider.log.max_running == 2
    assert state.clip_stage.max_concurrent == 2


async def test_failed_clip_waits_for_a_retry_sent_from_the_temporal_cli(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = FlakyProvider(prepared_clip, 0.5, failing={3})
    async with running_worker(client, settings, {"flaky": provider}):
        handle = await start(client, settings, request_for(5, "flaky"))
        state = await wait_for_state(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        failed = state.clips[2]
        assert failed.status is ClipStatus.failed
        assert failed.clip_id == 3 and failed.attempts == 3
        assert failed.error == "upstream exploded rendering clip 3"
        assert all(c.status is ClipStatus.complete for c in state.clips if c.clip_id != 3)
        assert state.retry_deadline is not None

        provider.heal()
        target = client.service_client.config.target_host
        subprocess.run(
            [
                temporal_cli(), "workflow", "signal", "--address", target,
                "--namespace", "default", "--workflow-id", handle.id,
                "--name", "retry_clip", "--input", '{"clip_id": 3, "prompt": "SCENE: calmer"}',
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed
    retried = state.clips[2]
    assert retried.status is ClipStatus.complete
    assert retried.prompt == "SCENE: calmer" and retried.attempts == 4
    assert [clip for clip, _ in provider.log.submits].count(3) == 4


async def test_finish_without_the_failed_clips(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = FlakyProvider(prepared_clip, 0.2, failing={2})
    async with running_worker(client, settings, {"flaky": provider}):
        handle = await start(client, settings, request_for(3, "flaky"))
        await wait_for_state(handle, lambda s: s.status is GenerationStatus.awaiting_retry)
        await handle.signal("finish_without_failed")
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed
    assert state.skipped_clips == [2]
    assert state.duration == pytest.approx(expected_duration([2.0, 2.0], 0), abs=0.2)


async def test_retry_window_elapses_and_the_run_fails(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = FlakyProvider(prepared_clip, 0.1, failing={1})
    async with running_worker(client, settings, {"flaky": provider}):
        handle = await start(client, settings, request_for(2, "flaky", retry_window_seconds=2))
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        state = await handle.query("get_state", result_type=GenerationState)
        await keep_history(handle)

    assert "no retry came within" in str(failure.value.cause)
    assert state.status is GenerationStatus.failed
    assert state.error is not None and "clip(s) 1 failed" in state.error


async def test_retried_attempt_resumes_the_heartbeated_prediction(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = DiesOnceProvider(prepared_clip, 0.5)
    async with running_worker(client, settings, {"dies": provider}):
        handle = await start(client, settings, request_for(1, "dies"))
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed
    assert len(provider.log.submits) == 1, "a second prediction was paid for"
    ((_, prediction),) = provider.log.submits
    assert provider.log.waits == [(1, prediction), (1, prediction)]
    assert state.clips[0].attempts == 2 and state.clips[0].prediction_id == prediction


def ffmpeg_processes() -> list[int]:
    """FFmpeg processes that are children of this test process."""
    found = []
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = stat.rsplit(")", 1)[1].split()[1]
        if parent == me and b"ffmpeg" in cmdline:
            found.append(int(entry.name))
    return found


async def test_cancel_mid_clip_leaves_no_process_or_temp_file(
    client: Client, settings: Settings
) -> None:
    request = request_for(3, "local", platform=Platform.tiktok, scenes=scenes(3, seconds=10.0))
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        await wait_for_state(handle, lambda s: s.stage is Stage.clips)
        # Wait until FFmpeg really renders clips (visible in their heartbeats).
        for _ in range(600):
            pending = (await handle.describe()).raw_description.pending_activities
            if any(p.heartbeat_details.payloads for p in pending) and ffmpeg_processes():
                break
            await asyncio.sleep(0.1)
        assert ffmpeg_processes(), "no clip was rendering"
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query("get_state", result_type=GenerationState)
        await keep_history(handle)

    assert state.status is GenerationStatus.cancelled
    assert ffmpeg_processes() == []
    work = settings.data_dir / "tmp"
    assert not work.exists() or list(work.iterdir()) == []
