"""Stitching: order, stream copy only when safe, crossfade durations, with and without sound."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from activities.media import ffmpeg
from activities.media.layout import caption_box, wrap_caption
from activities.media.overlay import overlay_caption
from activities.media.stitch import expected_duration, scene_starts, stitch
from storyreel.errors import BadInputError

from .helpers import SMALL, make_clip, mean_colour, mean_difference, rgb_frame, white_pixels

SPOT = (164, 304, 32, 32)  # the centre: letterboxed clips keep colour there


def colour_at(video: Path, at: float) -> str:
    red, green, blue = mean_colour(rgb_frame(video, at, SPOT))
    return max((red, "red"), (green, "green"), (blue, "blue"))[1]


def test_duration_formula_and_scene_starts() -> None:
    assert expected_duration([1.0, 2.0, 1.5], 0.5) == pytest.approx(3.5)
    assert expected_duration([2.0], 0.5) == 2.0
    assert scene_starts([1.0, 2.0, 1.5], 0.5) == [0.0, 0.5, 2.0]


def test_matching_clips_are_stream_copied(tmp_path: Path) -> None:
    clips = [
        make_clip(tmp_path / f"{n}.mp4", SMALL, 1.0, colour, audio=True)
        for n, colour in enumerate(("red", "blue"))
    ]
    report = stitch(clips, tmp_path / "out.mp4", SMALL, transition=None)
    assert (report.mode, report.has_audio) == ("copy", True)
    assert report.duration == pytest.approx(2.0, abs=0.1)
    assert ffmpeg.probe(report.path).audio_codec == "aac"
    assert [colour_at(report.path, at) for at in (0.5, 1.5)] == ["red", "blue"]


def test_mixed_sound_and_sizes_are_re_encoded_in_order(tmp_path: Path) -> None:
    clips = [
        make_clip(tmp_path / "a.mp4", SMALL, 1.0, "red"),
        make_clip(tmp_path / "b.mp4", SMALL, 1.5, "blue", audio=True),
        make_clip(tmp_path / "c.mp4", SMALL, 1.0, "green", fps=15, size=(320, 240)),
    ]
    report = stitch(clips, tmp_path / "out.mp4", SMALL, transition="none")
    assert (report.mode, report.has_audio, report.transition) == ("reencode", True, None)
    assert report.duration == pytest.approx(3.5, abs=0.1)
    info = ffmpeg.probe(report.path)
    assert (info.width, info.height, info.fps, info.audio_codec) == (360, 640, 30.0, "aac")
    assert [colour_at(report.path, at) for at in (0.5, 1.75, 3.0)] == ["red", "blue", "green"]


@pytest.mark.parametrize("with_sound", [False, True])
def test_crossfades_overlap_neighbouring_clips(tmp_path: Path, with_sound: bool) -> None:
    durations = (1.0, 2.0, 1.5)
    clips = [
        make_clip(tmp_path / f"{n}.mp4", SMALL, seconds, colour, audio=with_sound and n == 1)
        for n, (seconds, colour) in enumerate(zip(durations, ("red", "blue", "green"), strict=True))
    ]
    report = stitch(clips, tmp_path / "out.mp4", SMALL, transition="fade")
    assert (report.mode, report.has_audio) == ("xfade", with_sound)
    assert report.expected_duration == pytest.approx(3.5)
    assert report.duration == pytest.approx(expected_duration(durations, 0.5), abs=0.1)
    starts = scene_starts(durations, 0.5)
    solo = [starts[0] + 0.25, starts[1] + 1.0, starts[2] + 1.0]
    assert [colour_at(report.path, at) for at in solo] == ["red", "blue", "green"]
    # Half-way through the first fade both scenes show.
    red, _, blue = mean_colour(rgb_frame(report.path, starts[1] + 0.25, SPOT))
    assert red > 60 and blue > 60


def test_transition_shortened_for_short_clips_and_single_clip(tmp_path: Path) -> None:
    short = [make_clip(tmp_path / f"{n}.mp4", SMALL, 0.6, "red") for n in range(2)]
    report = stitch(short, tmp_path / "short.mp4", SMALL, transition="wipeleft")
    assert report.transition_seconds == pytest.approx(0.3)
    assert report.duration == pytest.approx(0.9, abs=0.1)
    single = stitch(short[:1], tmp_path / "single.mp4", SMALL, transition="fade")
    assert (single.mode, single.transition) == ("copy", None)
    assert single.duration == pytest.approx(0.6, abs=0.05)


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no clips"):
        stitch([], tmp_path / "out.mp4", SMALL)
    clip = make_clip(tmp_path / "a.mp4", SMALL, 0.5, "red")
    with pytest.raises(BadInputError, match="unknown transition 'spin'.*fade"):
        stitch([clip, clip], tmp_path / "out.mp4", SMALL, transition="spin")


def test_report_gives_each_scenes_own_span(tmp_path: Path) -> None:
    clips = [make_clip(tmp_path / f"{n}.mp4", SMALL, 1.0, "red") for n in range(3)]
    faded = stitch(clips, tmp_path / "out.mp4", SMALL, transition="fade", transition_seconds=0.25)
    assert faded.durations == pytest.approx((1.0, 1.0, 1.0), abs=0.05)
    spans = faded.scene_spans()
    assert [start for start, _ in spans] == pytest.approx([0.0, 0.75, 1.5], abs=0.05)
    assert spans[-1][1] == pytest.approx(faded.duration) and faded.duration == pytest.approx(
        2.5, abs=0.1
    )


def test_captions_drawn_in_the_join_look_as_the_overlay_step_draws_them(tmp_path: Path) -> None:
    """One encode (captions in the crossfade's own pass) instead of two, same picture."""
    # Solid clips: what differs is the drawing, not the second encode's generation loss.
    clips = [make_clip(tmp_path / f"{n}.mp4", SMALL, 1.0, c) for n, c in enumerate(("red", "blue"))]
    texts = ["The keeper climbs at dawn", "Fog rolls over the harbour"]
    captioned = [tmp_path / f"captioned-{n}.mp4" for n in range(2)]
    for clip, text, target in zip(clips, texts, captioned, strict=True):
        overlay_caption(clip, target, text, SMALL)
    twice = stitch(captioned, tmp_path / "twice.mp4", SMALL, transition="fade")
    once = stitch(clips, tmp_path / "once.mp4", SMALL, transition="fade", captions=texts)
    assert once.mode == twice.mode == "xfade"
    assert once.duration == pytest.approx(twice.duration, abs=0.01)
    for clip, text, at in zip(clips, texts, (0.3, 1.2), strict=True):
        lines, size = wrap_caption(text, SMALL)
        box = caption_box(SMALL, len(lines), size)
        drawn = rgb_frame(once.path, at, box)
        assert white_pixels(drawn) > 50
        # Within the ringing a second encode leaves around small text; no caption is > 15.
        assert mean_difference(drawn, rgb_frame(twice.path, at, box)) < 6
        assert mean_difference(drawn, rgb_frame(clip, 0.5, box)) > 15
    with pytest.raises(BadInputError, match="1 captions given to stitch 2 clips"):
        stitch(clips, tmp_path / "bad.mp4", SMALL, captions=["one"])


def keyframe_times(video: Path) -> list[float]:
    """When each keyframe of ``video`` is shown (decoding keyframes only)."""
    log = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-skip_frame", "nokey", "-i", str(video),
         "-vf", "showinfo", "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    return [float(time) for time in re.findall(r"pts_time:([\d.]+)", log)]


def test_the_poster_frame_is_a_keyframe_clear_of_any_crossfade(tmp_path: Path) -> None:
    colours = ("red", "blue", "green")
    clips = [make_clip(tmp_path / f"{n}.mp4", SMALL, 1.0, c) for n, c in enumerate(colours)]
    joined = stitch(clips, tmp_path / "out.mp4", SMALL, transition="fade", transition_seconds=0.4)
    # The middle scene (0.6-1.2 s) plays at the midpoint (1.1 s); clear of its fade from 1.0 s.
    assert 1.0 < joined.poster_at < 1.2
    poster = (joined.poster_at * SMALL.fps) // 1 / SMALL.fps  # where that frame starts
    assert any(abs(time - poster) < 0.002 for time in keyframe_times(joined.path))
    red, green, blue = mean_colour(rgb_frame(joined.path, joined.poster_at, (0, 0, 64, 64)))
    assert blue > 200 and red < 30 and green < 30, "a pure frame of scene 2, not a blend"
