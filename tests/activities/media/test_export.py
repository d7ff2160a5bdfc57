"""Export to a platform's exact format, its duration limit, thumbnails and metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.media import ffmpeg
from activities.media.export import check_duration, details, export, metadata, thumbnail
from storyreel.contracts import PLATFORMS, Platform
from storyreel.errors import BadInputError

from .helpers import SMALL, make_clip, mean_colour, rgb_frame, top_level_boxes


def test_foreign_video_is_scaled_padded_and_given_sound(tmp_path: Path) -> None:
    spec = PLATFORMS[Platform.youtube]
    source = make_clip(tmp_path / "in.mp4", SMALL, 1.5, "red", fps=15, size=(640, 480))
    out = tmp_path / "out.mp4"
    info = export(source, out, spec)
    assert (info.width, info.height, info.fps) == (1920, 1080, 30.0)
    assert (info.video_codec, info.video_profile, info.pix_fmt) == ("h264", "High", "yuv420p")
    assert (info.audio_codec, info.audio_sample_rate) == ("aac", 48000)
    assert info.duration == pytest.approx(1.5, abs=0.1)
    kinds = top_level_boxes(out)
    assert kinds.index("moov") < kinds.index("mdat"), kinds
    # 4:3 inside 16:9: pillarboxed, never cropped.
    assert mean_colour(rgb_frame(out, 0.5, (0, 500, 100, 80))) == pytest.approx((0, 0, 0), abs=3)
    assert mean_colour(rgb_frame(out, 0.5, (900, 500, 100, 80)))[0] > 200


def test_conforming_video_keeps_its_picture(tmp_path: Path) -> None:
    source = tmp_path / "in.mp4"
    ffmpeg.run(["-f", "lavfi", "-i", "testsrc2=s=360x640:r=30:d=1", "-vf", "format=yuv420p",
                "-c:v", "libx264", "-preset", "veryfast", str(source)])  # fmt: skip
    info = export(source, tmp_path / "out.mp4", SMALL)
    # Stream copy: the very same video bytes, so the same size give or take the container.
    assert abs(info.size_bytes - source.stat().st_size) < 20_000
    assert info.audio_codec == "aac"


def test_check_duration_names_the_limit() -> None:
    check_duration(60.0, Platform.youtube_shorts)
    check_duration(3600.0, Platform.youtube)
    with pytest.raises(BadInputError, match="youtube_shorts allows at most 60 s"):
        check_duration(61.5, "youtube_shorts")
    with pytest.raises(BadInputError, match=r"lasts 95\.0 s but instagram_reels .* 90 s"):
        check_duration(95.0, Platform.instagram_reels)
    with pytest.raises(BadInputError, match="tiktok allows at most 180 s"):
        check_duration(181.0, Platform.tiktok)


def test_thumbnail_prefers_a_crisp_frame(tmp_path: Path) -> None:
    busy = make_clip(tmp_path / "busy.mp4", SMALL, 1.2, None)
    flat = make_clip(tmp_path / "flat.mp4", SMALL, 1.8, "gray")
    listing = tmp_path / "list.txt"
    listing.write_text(f"file '{busy}'\nfile '{flat}'\n")
    video = tmp_path / "video.mp4"
    ffmpeg.run(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(video)])
    # Candidates at 1.5 s (flat, the middle), 0.9 s (busy) and 2.1 s (flat): busy wins.
    chosen = thumbnail(video, tmp_path / "auto.jpg")
    middle = thumbnail(video, tmp_path / "middle.jpg", at=1.5)
    assert chosen.read_bytes()[:3] == middle.read_bytes()[:3] == b"\xff\xd8\xff"
    info = ffmpeg.probe(chosen)
    assert (info.video_codec, info.width, info.height) == ("mjpeg", 360, 640)
    whole = (0, 0, 360, 640)
    assert mean_colour(rgb_frame(middle, None, whole)) == pytest.approx((128, 128, 128), abs=6)
    assert len(set(rgb_frame(middle, None, whole))) < 10  # flat grey
    assert len(set(rgb_frame(chosen, None, whole))) > 100  # the busy test pattern


def test_metadata(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", SMALL, 1.0, "red", audio=True)
    data = metadata(clip)
    assert {key: data[key] for key in ("width", "height", "fps", "video_codec", "audio_codec")} == {
        "width": 360,
        "height": 640,
        "fps": 30.0,
        "video_codec": "h264",
        "audio_codec": "aac",
    }
    assert data["duration"] == pytest.approx(1.0, abs=0.05)
    assert data["size_bytes"] == clip.stat().st_size
    assert data["bit_rate"] > 0
    assert details(clip).audio_channels in ("mono", "stereo")
