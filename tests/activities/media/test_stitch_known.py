"""Clip details probed once by the clip stage and carried to the stitch step as data.

Real FFmpeg throughout; the probe entry point (``ffmpeg.probe_text``) is only wrapped to
count (and time) its calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment

from activities.assembly import AssemblyActivities
from activities.clips import ClipActivities
from activities.media import ffmpeg
from activities.media.export import MediaDetails, clip_encoding, details
from activities.media.stitch import clip_media, known_details, stitch
from activities.providers import LocalClipProvider
from storyreel.contracts import (
    AssemblyClip,
    ClipInput,
    ClipMedia,
    ClipResult,
    ClipState,
    ClipStatus,
    GenerationStatus,
    PlannedScene,
    Platform,
    PlatformSpec,
    StitchInput,
)
from storyreel.errors import BadInputError
from storyreel.settings import Settings
from storyreel.storage import LocalStorage
from tests.workflows.conftest import request_for, running_worker, start

from .helpers import SMALL, make_clip


class Probes:
    """Wraps ``ffmpeg.probe_text``: which files were probed, and how many probes overlapped."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold: float = 0.0) -> None:
        self.paths: list[Path] = []
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()
        self._hold = hold
        self._real: Callable[[Path, str | None], str] = ffmpeg.probe_text
        monkeypatch.setattr(ffmpeg, "probe_text", self._probe)

    def _probe(self, path: Path, exe: str | None = None) -> str:
        with self._lock:
            self.paths.append(path)
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            time.sleep(self._hold)  # long enough for concurrent probes to overlap for sure
            return self._real(path, exe)
        finally:
            with self._lock:
                self._running -= 1

    def names(self) -> list[str]:
        return sorted(path.name for path in self.paths)


def recorded(path: Path) -> MediaDetails | None:
    """What the clip stage records for ``path``, after a trip through JSON like the workflow's."""
    media = ClipMedia.model_validate_json(clip_media(details(path)).model_dump_json())
    return known_details(media)


def bframe_clip(path: Path, spec: PlatformSpec, seconds: float, *, audio: bool) -> Path:
    """A clip encoded like the pipeline's (x264 veryfast: B-frames), optionally with sound."""
    sound = ["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-c:a", "aac"] if audio else []
    ffmpeg.run(
        ["-f", "lavfi", "-i", f"testsrc2=s={spec.width}x{spec.height}:r={spec.fps}:d={seconds}",
         *sound, *clip_encoding(spec), str(path)],
    )  # fmt: skip
    return path


def test_known_details_join_the_same_without_probing_the_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = [
        make_clip(tmp_path / f"{n}.mp4", SMALL, seconds, colour, audio=True)
        for n, (seconds, colour) in enumerate(((1.0, "red"), (0.7, "blue"), (1.3, "green")))
    ]
    known = [recorded(clip) for clip in clips]
    probes = Probes(monkeypatch)
    plain = stitch(clips, tmp_path / "plain.mp4", SMALL, transition=None)
    assert probes.names() == ["0.mp4", "1.mp4", "2.mp4"]  # copy mode: the output is not probed

    probes.paths.clear()
    informed = stitch(clips, tmp_path / "informed.mp4", SMALL, transition=None, known=known)
    assert probes.paths == []
    assert (informed.mode, informed.has_audio) == (plain.mode, plain.has_audio) == ("copy", True)
    assert informed.durations == plain.durations
    assert informed.expected_duration == plain.expected_duration
    assert informed.duration == plain.duration
    assert informed.path.read_bytes() == plain.path.read_bytes()


@pytest.mark.parametrize("transition", [None, "fade"])
def test_known_details_make_the_same_re_encode_decisions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transition: str | None
) -> None:
    clips = [
        make_clip(tmp_path / "a.mp4", SMALL, 1.0, "red"),
        make_clip(tmp_path / "b.mp4", SMALL, 1.0, "blue", audio=True, fps=15, size=(320, 240)),
    ]
    known = [recorded(clip) for clip in clips]
    plain = stitch(clips, tmp_path / "plain.mp4", SMALL, transition=transition)
    probes = Probes(monkeypatch)
    informed = stitch(clips, tmp_path / "out.mp4", SMALL, transition=transition, known=known)
    assert probes.names() == ["out.mp4"]  # a re-encoded result is still measured
    expected_mode = "reencode" if transition is None else "xfade"
    assert (informed.mode, informed.has_audio) == (plain.mode, plain.has_audio)
    assert informed.mode == expected_mode and informed.has_audio
    assert informed.transition_seconds == plain.transition_seconds
    assert informed.durations == plain.durations
    assert informed.duration == pytest.approx(plain.duration, abs=0.05)


def test_stale_or_missing_details_are_probed_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = [make_clip(tmp_path / f"{n}.mp4", SMALL, 1.0, "red") for n in range(4)]
    known = [recorded(clip) for clip in clips]
    assert all(info is not None for info in known)
    good, stale = known[0], known[1]
    assert good is not None and stale is not None
    # Recorded for another file: wrong size, and a frame rate that would force a re-encode
    # if it were believed.
    stale = stale.model_copy(update={"size_bytes": stale.size_bytes + 1, "fps": 15.0})
    unsized = good.model_copy(update={"size_bytes": 0})
    probes = Probes(monkeypatch, hold=0.3)
    report = stitch(
        clips, tmp_path / "out.mp4", SMALL, transition=None, known=[good, stale, None, unsized]
    )
    assert probes.names() == ["1.mp4", "2.mp4", "3.mp4"]
    assert probes.most_at_once == 3  # concurrently, not one after another
    assert report.mode == "copy"  # decided on what the files really are
    assert report.durations == pytest.approx((1.0, 1.0, 1.0, 1.0))


def test_details_for_the_wrong_number_of_clips_are_refused(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", SMALL, 0.5, "red")
    with pytest.raises(BadInputError, match="details for 2 clips given to stitch 1"):
        stitch([clip], tmp_path / "out.mp4", SMALL, known=[None, None])


@pytest.mark.parametrize(
    ("durations", "audio", "bframes", "follow"),
    [
        ((1.0, 1.0, 1.0), False, False, False),
        ((1.3, 0.7, 2.1), True, False, False),
        ((2.0, 1.5, 2.0), False, True, False),
        ((1.3, 0.7, 2.1), True, True, True),
    ],
)
def test_copy_duration_is_within_a_frame_of_a_probe_of_the_output(
    tmp_path: Path,
    durations: tuple[float, ...],
    audio: bool,
    bframes: bool,
    follow: bool,
) -> None:
    clips = [
        bframe_clip(tmp_path / f"{n}.mp4", SMALL, seconds, audio=audio)
        if bframes
        else make_clip(tmp_path / f"{n}.mp4", SMALL, seconds, "red", audio=audio)
        for n, seconds in enumerate(durations)
    ]
    fractions: list[float] = []
    report = stitch(
        clips,
        tmp_path / "out.mp4",
        SMALL,
        transition=None,
        known=[recorded(clip) for clip in clips],
        on_progress=fractions.append if follow else None,
    )
    assert report.mode == "copy"
    assert report.duration == pytest.approx(ffmpeg.probe(report.path).duration, abs=1 / SMALL.fps)
    if follow:
        assert fractions and fractions[-1] > 0.95


def test_run_reports_the_last_out_time_only_when_asked(tmp_path: Path) -> None:
    args = ["-f", "lavfi", "-i", "color=c=red:s=64x64:r=25:d=1.2", "-c:v", "libx264"]
    assert ffmpeg.run([*args, str(tmp_path / "a.mp4")]) is None
    end = ffmpeg.run([*args, str(tmp_path / "b.mp4")], end_time=True)
    assert end == pytest.approx(1.2, abs=0.1)
    fractions: list[float] = []
    followed = ffmpeg.run(
        [*args, str(tmp_path / "c.mp4")], duration=1.2, on_progress=fractions.append
    )
    assert followed == end and fractions[-1] == pytest.approx(1.0, abs=0.1)


async def test_clip_stage_records_what_the_assembly_then_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "media")
    clip_stage = ClipActivities(storage, {"local": LocalClipProvider()}, tmp_path / "clips")
    results: list[ClipResult] = []
    for clip_id in (1, 2):
        scene = PlannedScene(index=1, description="A gull on the pier", duration=1.0, start=0.0)
        request = ClipInput(
            generation_id="g", clip_id=clip_id, clip_count=2, prompt="p", scene=scene,
            platform=Platform.tiktok, provider="local", model="local",
        )  # fmt: skip
        results.append(await ActivityEnvironment().run(clip_stage.generate_clip, request))
    # Same scene, same seed: the second clip is a cache hit, recorded all the same.
    assert [result.cached for result in results] == [False, True]
    for result in results:
        assert result.media == clip_media(details(storage.path(result.key)))
        assert result.media is not None and result.media.duration == result.duration

    probes = Probes(monkeypatch)
    assembly = AssemblyActivities(storage, tmp_path / "work")
    stitch_request = StitchInput(
        generation_id="g",
        platform=Platform.tiktok,
        clips=[
            AssemblyClip(key=result.key, clip_id=result.clip_id, media=result.media)
            for result in results
        ],
    )
    env = ActivityEnvironment()
    joined = env.run(assembly.stitch_video, stitch_request)
    assert joined.mode == "copy"
    assert [path.name for path in probes.paths if path.name.startswith("clip-")] == []

    # Captions make new files: those are probed, the recorded details are not used for them.
    probes.paths.clear()
    captioned = stitch_request.model_copy(
        update={
            "generation_id": "g2",
            "captions": True,
            "clips": [
                stitch_request.clips[0].model_copy(update={"caption": "Hello"}),
                stitch_request.clips[1],
            ],
        }
    )
    env.run(assembly.stitch_video, captioned)
    names = [path.name for path in probes.paths]
    assert "clip-002.mp4" not in names and names.count("captioned-001.mp4") == 1


def test_contracts_carry_media_and_still_read_what_came_before() -> None:
    media = ClipMedia(
        size_bytes=1234, duration=6.0, width=1080, height=1920, fps=30.0, video_codec="h264",
        video_profile="High", pix_fmt="yuv420p", audio_codec="aac", audio_sample_rate=48000,
        audio_channels="stereo",
    )  # fmt: skip
    result = ClipResult(clip_id=1, key="k", duration=6.0, render_seconds=1.0, media=media)
    state = ClipState(clip_id=1, status=ClipStatus.complete, key="k", media=media)
    clip = AssemblyClip(key="k", clip_id=1, media=media)
    converter = pydantic_data_converter.payload_converter
    for model in (result, clip):
        assert model.model_dump()["media"] == media.model_dump()
        assert type(model).model_validate_json(model.model_dump_json()) == model
        assert converter.from_payloads(converter.to_payloads([model]), [type(model)]) == [model]
        bare = model.model_copy(update={"media": None})
        assert type(model).model_validate_json(bare.model_dump_json()) == bare
    # The workflow keeps a clip's media in its state for the assembly only: queries, results
    # and the record go without it (the record must equal the final state).
    assert state.media == media and "media" not in state.model_dump()
    again = ClipState.model_validate_json(state.model_dump_json())
    assert again == state.model_copy(update={"media": None})
    assert converter.from_payloads(converter.to_payloads([state]), [ClipState]) == [again]
    # JSON written before the field existed (workflow histories, cached results).
    old_result = ClipResult.model_validate_json(
        '{"clip_id": 1, "key": "k", "duration": 6.0, "render_seconds": 1.0}'
    )
    assert old_result.media is None
    assert ClipState.model_validate({"clip_id": 2}).media is None
    assert AssemblyClip.model_validate({"key": "k", "caption": "c"}).media is None
    # Details and their recorded form convert both ways without losing what stitch uses.
    info = known_details(media)
    assert info is not None and clip_media(info) == media
    assert known_details(None) is None


async def test_a_generation_carries_clip_media_from_the_clip_stage_to_the_stitch(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real workflow: ClipResult -> ClipState -> AssemblyClip, no stitch probes."""
    probes = Probes(monkeypatch)
    request = request_for(2, "local", captions=False, narration=False, transition="none")
    async with running_worker(client, settings):
        handle = await start(client, settings, request)
        final = await handle.result()
    assert final.status is GenerationStatus.completed
    assert final.assembly is not None and final.assembly.mode == "copy"
    fetched = [
        path.name
        for path in probes.paths
        if path.parent.name.startswith("assemble-") and path.name.startswith("clip-")
    ]
    assert fetched == []
    # The clip stage did probe each clip once, and the stitch step saw every clip.
    assert sum(1 for path in probes.paths if path.parent.name.startswith("clip-")) == 2
