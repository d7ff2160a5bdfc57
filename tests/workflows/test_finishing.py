"""Finished videos through the whole workflow: every platform, captions, transitions, sound.

Real FFmpeg and the real dev server, local providers, 2 scenes of 2 s each. Everything is
checked on the output file itself (probe, pixels, samples), never on what we asked FFmpeg for.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError

from activities.media import ffmpeg
from activities.media.layout import caption_box, wrap_caption
from activities.media.stitch import expected_duration, scene_starts
from storyreel.contracts import (
    PLATFORMS,
    GenerationState,
    GenerationStatus,
    Platform,
    SceneIn,
    Stage,
)
from storyreel.keys import video_key
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from tests.activities.media.helpers import (
    mean_difference,
    rgb_frame,
    samples,
    tone_level,
    white_pixels,
)
from tests.workflows.conftest import AS_DEPLOYED, keep_history, request_for, running_worker, start
from tests.workflows.test_generation import ffmpeg_processes

SECONDS = 2.0
TRANSITION = 0.5
CAPTIONS = ("The keeper climbs at dawn", "Fog rolls over the harbour")
MUSIC_HERTZ = 220


def two_scenes() -> list[SceneIn]:
    return [
        SceneIn(description=f"Scene {n}: a lighthouse keeper counts waves", duration=SECONDS,
                caption=caption)
        for n, caption in enumerate(CAPTIONS, start=1)
    ]  # fmt: skip


def put_music(storage: LocalStorage, key: str = "music/bed.wav") -> str:
    """A 1 s tone: shorter than the video, so the bed must loop."""
    source = storage.root / "bed-source.wav"
    ffmpeg.run(["-f", "lavfi", "-i", f"sine=f={MUSIC_HERTZ}:d=1", str(source)])
    storage.put_file(key, source)
    return key


def temp_left(settings: Settings) -> list[Path]:
    work = settings.data_dir / "tmp"
    return list(work.iterdir()) if work.exists() else []


# narration on (silent TTS) for two platforms, a music bed for two: each path runs somewhere.
CASES = {
    Platform.tiktok: {"narration": True},
    Platform.youtube: {"narration": True, "music": True},
    Platform.youtube_shorts: {"narration": True},
    Platform.instagram_reels: {"narration": False, "music": True},
}


@pytest.mark.parametrize("platform", list(Platform))
async def test_each_platform_gets_a_finished_video(
    client: Client, settings: Settings, platform: Platform
) -> None:
    spec, case = PLATFORMS[platform], CASES[platform]
    storage = LocalStorage(settings.media_dir)
    music = put_music(storage) if case.get("music") else None
    request = request_for(
        2, "local", platform=platform, scenes=two_scenes(), narration=case["narration"],
        music=music, transition_seconds=TRANSITION, **AS_DEPLOYED,
    )  # fmt: skip
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        state = await handle.result()
        await keep_history(handle)

    assert state.status is GenerationStatus.completed, state.error
    assert state.video_key is not None and state.thumbnail_key is not None
    video = storage.path(state.video_key)
    info = ffmpeg.probe(video)
    expected = expected_duration([SECONDS, SECONDS], TRANSITION)
    assert (info.width, info.height, info.fps) == (spec.width, spec.height, float(spec.fps))
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.duration == pytest.approx(expected, abs=0.1)
    assert state.duration == pytest.approx(info.duration, abs=0.01)

    image = ffmpeg.probe(storage.path(state.thumbnail_key))
    assert storage.path(state.thumbnail_key).read_bytes()[:3] == b"\xff\xd8\xff"
    assert (image.video_codec, image.width, image.height) == ("mjpeg", spec.width, spec.height)

    # Scene 2 (after its fade-in) is another picture than scene 1.
    starts = scene_starts([SECONDS, SECONDS], TRANSITION)
    first_at, second_at = starts[0] + 0.75, starts[1] + TRANSITION + 0.75
    sky = (0, 0, spec.width, spec.height // 5)
    assert mean_difference(rgb_frame(video, first_at, sky), rgb_frame(video, second_at, sky)) > 10

    # The caption is drawn: its box differs from the clip as rendered, with white text in it.
    lines, size = wrap_caption(CAPTIONS[0], spec)
    box = caption_box(spec, len(lines), size)
    clip = state.clips[0].key
    assert clip is not None
    drawn = rgb_frame(video, first_at, box)
    assert mean_difference(drawn, rgb_frame(storage.path(clip), first_at, box)) > 15
    assert white_pixels(drawn) > 100

    sound = samples(video)
    if case.get("music"):
        assert tone_level(sound, 0.5, expected - 0.5, MUSIC_HERTZ) > 100, "no music bed"
    else:
        assert max(abs(sample) for sample in sound) < 50, "silent narration should be silent"

    assembly = state.assembly
    assert assembly is not None
    assert (assembly.mode, assembly.overlay_mode) == ("xfade", "inline")
    assert (assembly.transition, assembly.transition_seconds) == ("fade", TRANSITION)
    assert (assembly.narration, assembly.music) == (case["narration"], music is not None)
    assert (assembly.video_codec, assembly.audio_codec) == ("h264", "aac")
    assert assembly.size_bytes == video.stat().st_size and (assembly.bit_rate or 0) > 0
    assert {"fetch", "stitch", "export", "thumbnail", "upload"} <= set(assembly.step_seconds)

    metrics = state.metrics
    assert metrics is not None
    assert set(metrics.stage_seconds) == set(Stage)
    assert metrics.bottleneck is max(metrics.stage_seconds, key=metrics.stage_seconds.__getitem__)
    assert metrics.clips == 2 and metrics.max_concurrent_clips == 2
    assert metrics.speedup is not None and metrics.speedup > 1.0
    assert metrics.total_seconds >= sum(metrics.stage_seconds.values()) - 0.01
    assert temp_left(settings) == []


async def test_missing_music_fails_the_generation_with_a_message(
    client: Client, settings: Settings
) -> None:
    request = request_for(
        2, "local", scenes=two_scenes(), music="music/not-uploaded.mp3", **AS_DEPLOYED
    )
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        with pytest.raises(WorkflowFailureError) as failure:
            await handle.result()
        state = await handle.query("get_state", result_type=GenerationState)
        await keep_history(handle)

    assert state.status is GenerationStatus.failed
    assert state.error is not None
    assert "music: no track at 'music/not-uploaded.mp3'" in state.error
    assert "music/not-uploaded.mp3" in str(failure.value.cause)
    assert state.metrics is not None and state.metrics.bottleneck is not None
    assert temp_left(settings) == []


async def test_a_script_too_long_for_shorts_is_refused_before_any_clip(
    client: Client, settings: Settings
) -> None:
    # 30 sentences of 10 words: 4 s each at 2.5 words/s, 120 s in all.
    script = " ".join(
        f"Sentence {n} tells how the keeper climbs the stairs at dawn." for n in range(30)
    )
    request = request_for(
        0, "local", scenes=None, script=script, platform=Platform.youtube_shorts, **AS_DEPLOYED
    )
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query("get_state", result_type=GenerationState)
        await keep_history(handle)

    assert state.status is GenerationStatus.failed
    assert state.error is not None
    assert "youtube_shorts allows at most 60 s" in state.error
    assert state.clips == [] and state.storyboard_keys == []


async def test_cancel_during_assembly_leaves_no_process_or_temp_file(
    client: Client, settings: Settings
) -> None:
    scenes = [
        SceneIn(description=f"Scene {n}: the harbour at night", duration=6.0, caption=f"Part {n}")
        for n in range(1, 4)
    ]
    request = request_for(
        3, "local", platform=Platform.tiktok, scenes=scenes, narration=True, **AS_DEPLOYED
    )
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        deadline = time.monotonic() + 240
        while True:
            state = await handle.query("get_state", result_type=GenerationState)
            if state.stage is Stage.assemble and ffmpeg_processes():
                break
            failed = [(c.clip_id, c.error) for c in state.clips if c.error]
            assert not failed and time.monotonic() < deadline, f"assembly never started: {failed}"
            await asyncio.sleep(0.05)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        # The activity learns of the cancellation at its next heartbeat, then cleans up.
        for _ in range(300):
            if not ffmpeg_processes() and not temp_left(settings):
                break
            await asyncio.sleep(0.1)
        state = await handle.query("get_state", result_type=GenerationState)
        await keep_history(handle)

    assert state.status is GenerationStatus.cancelled
    assert ffmpeg_processes() == []
    assert temp_left(settings) == []
    # Stopped, not finished: the video was never uploaded.
    assert not LocalStorage(settings.media_dir).exists(video_key(state.generation_id))
