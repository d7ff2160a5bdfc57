"""The assembly activity on its own (ActivityEnvironment): steps, heartbeats, errors, cleanup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from activities.assembly import SILENT_NARRATION, AssemblyActivities, FinishingOptions
from activities.media import ffmpeg
from storyreel.contracts import (
    PLATFORMS,
    AssemblyClip,
    GenerationState,
    GenerationStatus,
    Platform,
    PublishInput,
    StitchInput,
    StitchResult,
)
from storyreel.errors import BadInputError
from storyreel.storage import LocalStorage

from .helpers import make_clip, samples, tone_level

SPEC = PLATFORMS[Platform.youtube]


class RecordingTTS:
    """Speaks every text as a 300 Hz tone and remembers what it was asked to say."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str | None]] = []

    def synthesize(self, text: str, dst: Path, voice: str | None = None) -> Path:
        self.texts.append((text, voice))
        ffmpeg.run(["-f", "lavfi", "-i", "sine=f=300:d=0.4,volume=2", str(dst)])
        return dst


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path / "media")
    for n, colour in enumerate(("red", "blue"), start=1):
        store.put_file(f"clips/{n}.mp4", make_clip(tmp_path / f"{n}.mp4", SPEC, 1.0, colour))
    return store


def run(activities: AssemblyActivities, request: StitchInput) -> tuple[StitchResult, list[Any]]:
    beats: list[Any] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.extend(details)
    return env.run(activities.stitch_video, request), beats


def test_every_step_runs_in_order_and_heartbeats(tmp_path: Path, storage: LocalStorage) -> None:
    tts = RecordingTTS()
    work = tmp_path / "work"
    activities = AssemblyActivities(
        storage, work, options=FinishingOptions(tts=tts, overlay_parallel=False)
    )
    request = StitchInput(
        generation_id="g1",
        platform=Platform.youtube,
        clips=[
            AssemblyClip(key="clips/1.mp4", caption="Dawn", narration_text="first words"),
            AssemblyClip(key="clips/2.mp4", caption=None, narration_text="second words"),
        ],
        captions=True,
        narration=True,
        voice="en-gb",
        transition="fade",
        transition_seconds=0.4,
    )
    result, beats = run(activities, request)

    # A crossfade re-encodes anyway: the captions are drawn in that pass, no overlay step.
    assert result.mode == "xfade" and result.overlay_mode == "inline"
    assert result.duration == pytest.approx(1.6, abs=0.1)
    assert (result.video_codec, result.audio_codec, result.fps) == ("h264", "aac", 30.0)
    assert result.narration and not result.music and result.warnings == []
    # Spoken side by side, so in any order.
    assert sorted(tts.texts) == [("first words", "en-gb"), ("second words", "en-gb")]
    steps = [beat["step"] for beat in beats if isinstance(beat, dict)]
    order = ["fetch", "speech", "stitch", "export", "upload", "thumbnail"]
    assert list(dict.fromkeys(steps)) == order == list(result.step_seconds)
    assert any(isinstance(b, dict) and b.get("progress", 0) > 0 for b in beats)
    # Scene 2's speech starts where scene 2 starts: 1.0 - 0.4 = 0.6 s.
    sound = samples(storage.path(result.key))
    assert tone_level(sound, 0.65, 0.95, 300) > 300
    assert storage.exists("generations/g1/thumbnail.jpg")
    assert list(work.iterdir()) == []


def test_narration_from_a_silent_voice_is_a_warning(tmp_path: Path, storage: LocalStorage) -> None:
    # A worker whose voice is silent (STORYREEL_TTS_PROVIDER=silent, or no espeak-ng).
    activities = AssemblyActivities(storage, tmp_path / "work", options=FinishingOptions())
    clips = [AssemblyClip(key="clips/1.mp4", narration_text="Hello there")]
    request = StitchInput(generation_id="g3", platform=Platform.youtube, clips=clips)
    quiet, _ = run(activities, request.model_copy(update={"narration": True}))
    assert quiet.warnings == [SILENT_NARRATION]
    plain, _ = run(activities, request.model_copy(update={"generation_id": "g4"}))
    assert plain.warnings == [], "nothing was asked that the video lacks"


def test_hard_cuts_caption_each_clip_then_stream_copy(
    tmp_path: Path, storage: LocalStorage
) -> None:
    activities = AssemblyActivities(
        storage, tmp_path / "work", options=FinishingOptions(overlay_parallel=False)
    )
    request = StitchInput(
        generation_id="g5",
        platform=Platform.youtube,
        clips=[
            AssemblyClip(key="clips/1.mp4", caption="Dawn"),
            AssemblyClip(key="clips/2.mp4", caption="Dusk"),
        ],
        captions=True,
        transition="none",
    )
    result, beats = run(activities, request)
    assert (result.mode, result.overlay_mode) == ("copy", "sequential")
    assert "overlay" in result.step_seconds


def test_bare_clips_are_a_plain_join(tmp_path: Path, storage: LocalStorage) -> None:
    activities = AssemblyActivities(storage, tmp_path / "work")
    request = StitchInput(
        generation_id="g2",
        platform=Platform.youtube,
        clips=[AssemblyClip(key="clips/1.mp4"), AssemblyClip(key="clips/2.mp4")],
    )
    result, _ = run(activities, request)
    assert result.stream_copy and result.mode == "copy" and result.overlay_mode is None
    assert result.duration == pytest.approx(2.0, abs=0.1)
    assert result.audio_codec == "aac"  # the export gives a silent video its silent track


def test_missing_music_is_a_bad_input_and_leaves_nothing(
    tmp_path: Path, storage: LocalStorage
) -> None:
    activities = AssemblyActivities(storage, tmp_path / "work")
    request = StitchInput(
        generation_id="g3",
        platform=Platform.youtube,
        clips=[AssemblyClip(key="clips/1.mp4")],
        music="music/absent.mp3",
    )
    with pytest.raises(BadInputError, match="music: no track at 'music/absent.mp3'"):
        run(activities, request)
    assert list((tmp_path / "work").iterdir()) == []


def test_publish_reports_to_the_observer_and_survives_its_failure(
    tmp_path: Path, storage: LocalStorage
) -> None:
    seen: list[GenerationState] = []
    state = GenerationState(generation_id="g4", title="t", status=GenerationStatus.completed)
    activities = AssemblyActivities(storage, tmp_path / "work", on_published=seen.append)
    ActivityEnvironment().run(activities.publish_generation, PublishInput(state=state))
    assert [s.generation_id for s in seen] == ["g4"]

    def broken(_: GenerationState) -> None:
        raise RuntimeError("metrics down")

    failing = AssemblyActivities(storage, tmp_path / "work", on_published=broken)
    result = ActivityEnvironment().run(failing.publish_generation, PublishInput(state=state))
    assert storage.exists(result.record_key)
