"""The finishing chain end to end at every platform's real frame size.

overlay -> stitch (without and with a transition, then with narration and music) -> export ->
thumbnail, each output probed: resolution, codecs, duration against the formula, faststart.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.media import ffmpeg
from activities.media.audio import SilentTTS, Soundtrack
from activities.media.export import check_duration, details, export, thumbnail
from activities.media.layout import caption_box, wrap_caption
from activities.media.overlay import OverlayJob, overlay_all
from activities.media.stitch import expected_duration, scene_starts, stitch
from storyreel.contracts import PLATFORMS, Platform

from .helpers import (
    make_clip,
    mean_colour,
    mean_difference,
    rgb_frame,
    top_level_boxes,
    white_pixels,
)

DURATIONS = (1.0, 1.5, 1.0)
COLOURS = ("red", "blue", "green")
CAPTIONS = ("The keeper climbs at dawn", "Fog rolls over the harbour", "The lamp turns once more")
TRANSITION = 0.5


def dominant(pixels: bytes) -> str:
    red, green, blue = mean_colour(pixels)
    return max((red, "red"), (green, "green"), (blue, "blue"))[1]


# One platform per frame size: the chain sees only the size and rate (three platforms share
# 1080x1920 at 30 fps); each platform's own length limit is checked on the finished video, and
# tests/workflows/test_finishing.py finishes a run on every platform.
FRAMES = {(spec.width, spec.height, spec.fps): platform for platform, spec in PLATFORMS.items()}


@pytest.mark.parametrize("platform", list(FRAMES.values()))
def test_finishing_chain(platform: Platform, tmp_path: Path) -> None:
    spec = PLATFORMS[platform]
    # Silent clips, as most video models return; sound in clips is covered in test_stitch.
    raw = [
        make_clip(tmp_path / f"raw-{n}.mp4", spec, seconds, colour)
        for n, (seconds, colour) in enumerate(zip(DURATIONS, COLOURS, strict=True), start=1)
    ]
    jobs = [
        OverlayJob(clip, tmp_path / f"captioned-{n}.mp4", caption, spec)
        for n, (clip, caption) in enumerate(zip(raw, CAPTIONS, strict=True), start=1)
    ]
    report = overlay_all(jobs, parallel=True)
    assert report.mode == "parallel"
    captioned = [job.dst for job in jobs]
    for job in jobs:
        info = details(job.dst)
        assert (info.width, info.height, info.fps, info.pix_fmt) == (
            spec.width, spec.height, 30.0, "yuv420p",
        )  # fmt: skip

    # The caption is drawn in its box (a dark band with white text) and nowhere else.
    lines, size = wrap_caption(CAPTIONS[0], spec)
    box = caption_box(spec, len(lines), size)
    inside = rgb_frame(captioned[0], 0.5, box)
    assert mean_difference(inside, rgb_frame(raw[0], 0.5, box)) > 40
    assert white_pixels(inside) > 100
    sky = (0, 0, spec.width, spec.height // 5)
    assert mean_difference(rgb_frame(captioned[0], 0.5, sky), rgb_frame(raw[0], 0.5, sky)) < 3

    # No transition: overlaid clips share one encoding, so they stream-copy, in scene order.
    plain = stitch(captioned, tmp_path / "plain.mp4", spec, transition=None)
    assert plain.mode == "copy" and not plain.has_audio
    assert plain.duration == pytest.approx(sum(DURATIONS), abs=0.1)
    spans = zip(scene_starts(DURATIONS, 0), DURATIONS, strict=True)
    middles = [start + length / 2 for start, length in spans]
    corner = (0, 0, 64, 64)
    assert [dominant(rgb_frame(plain.path, at, corner)) for at in middles] == list(COLOURS)

    # Crossfades overlap neighbours: sum - (n-1)*t.
    faded = stitch(captioned, tmp_path / "faded.mp4", spec, transition="fade")
    expected = expected_duration(DURATIONS, TRANSITION)
    assert faded.mode == "xfade" and faded.transition_seconds == TRANSITION
    assert faded.duration == pytest.approx(expected, abs=0.1)
    starts = scene_starts(DURATIONS, TRANSITION)
    first = rgb_frame(faded.path, starts[0] + 0.25, corner)
    second = rgb_frame(faded.path, starts[1] + 0.75, corner)  # after the fade-in ends
    assert (dominant(first), dominant(second)) == ("red", "blue")

    # The same join with its sound: each scene's speech and a music bed, in the one run.
    speech = [
        SilentTTS().synthesize(c, tmp_path / f"speech-{n}.wav") for n, c in enumerate(CAPTIONS)
    ]
    music = tmp_path / "music.wav"
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=220:d=1", str(music)])  # shorter: must loop
    sounded = stitch(
        captioned, tmp_path / "sounded.mp4", spec, transition="fade",
        soundtrack=Soundtrack(speech, music),
    )  # fmt: skip
    assert sounded.has_audio and sounded.duration == pytest.approx(expected, abs=0.1)

    final = export(sounded.path, tmp_path / "final.mp4", spec)
    # What the stitch wrote already is the deliverable: export links it instead of a rewrite.
    as_is = export(sounded.path, tmp_path / "as-is.mp4", spec, faststart=True)
    assert (tmp_path / "as-is.mp4").read_bytes() == sounded.path.read_bytes()
    assert as_is.model_dump(exclude={"size_bytes"}) == final.model_dump(exclude={"size_bytes"})
    check_duration(final.duration, platform)
    assert (final.width, final.height, final.fps) == (spec.width, spec.height, 30.0)
    assert (final.video_codec, final.audio_codec) == ("h264", "aac")
    assert (final.video_profile, final.pix_fmt) == ("High", "yuv420p")
    assert final.duration == pytest.approx(expected, abs=0.1)
    kinds = top_level_boxes(tmp_path / "final.mp4")
    assert kinds.index("moov") < kinds.index("mdat"), kinds

    still = thumbnail(tmp_path / "final.mp4", tmp_path / "thumbnail.jpg")
    assert still.read_bytes()[:3] == b"\xff\xd8\xff"
    image = ffmpeg.probe(still)
    assert (image.video_codec, image.width, image.height) == ("mjpeg", spec.width, spec.height)
