"""A provider's clip checked and made exactly its scene's length, size and encoding."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

import pytest

from activities.media import ffmpeg
from activities.media.conform import (
    MAX_SLOWDOWN,
    ConformStopped,
    check_output,
    conform_clip,
    probe_output,
)
from activities.media.export import MediaDetails, conforms, details
from storyreel.contracts import PLATFORMS, Platform, PlatformSpec
from storyreel.errors import MediaError

from .helpers import SMALL, make_clip, mean_difference, samples, tone_level

# Frames are compared at this size: small enough to hold a clip's every frame.
THUMB = (90, 160)


def run_ffmpeg(*args: str) -> bytes:
    return subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args],
        capture_output=True,
        check=True,
    ).stdout


def packets(video: Path) -> dict[int, list[tuple[int, int]]]:
    """Each stream's packets as ``(pts, duration)`` in its time base (``framecrc``, no decode)."""
    streams: dict[int, list[tuple[int, int]]] = {}
    for line in (
        run_ffmpeg("-i", str(video), "-c", "copy", "-f", "framecrc", "-").decode().split("\n")
    ):
        if line and not line.startswith("#"):
            index, _, pts, duration, *_ = (part.strip() for part in line.split(","))
            streams.setdefault(int(index), []).append((int(pts), int(duration)))
    return streams


def sound_seconds(video: Path) -> float:
    """How long the (48 kHz) sound stream lasts: the end of its last packet."""
    pts, duration = max(packets(video)[1])
    return (pts + duration) / 48000


def all_frames(video: Path) -> list[bytes]:
    """Every frame, shrunk to :data:`THUMB`, as RGB."""
    width, height = THUMB
    raw = run_ffmpeg("-i", str(video), "-vf", f"scale={width}:{height}", "-f", "rawvideo",
                     "-pix_fmt", "rgb24", "pipe:1")  # fmt: skip
    size = width * height * 3
    return [raw[start : start + size] for start in range(0, len(raw), size)]


def video_md5(video: Path) -> bytes:
    """A digest of the video stream's coded bytes: equal means not re-encoded."""
    return run_ffmpeg("-i", str(video), "-map", "0:v:0", "-c", "copy", "-f", "md5", "-")


def right_clip(path: Path, spec: PlatformSpec, seconds: float, *, sound: str | None = None) -> Path:
    """A clip as the local provider renders it (H.264 High, the platform's size and rate);
    ``sound``: an ``anullsrc``/``sine`` source for its sound track, encoded as AAC."""
    audio = ["-f", "lavfi", "-i", sound] if sound else []
    ffmpeg.run(
        ["-f", "lavfi", "-i", f"testsrc2=s={spec.width}x{spec.height}:r={spec.fps}:d={seconds}",
         *audio, "-vf", "format=yuv420p", "-c:v", "libx264", "-preset", "veryfast",
         "-r", str(spec.fps), "-video_track_timescale", str(spec.fps * 512),
         *(["-c:a", "aac", "-shortest"] if sound else []), "-movflags", "+faststart", str(path)],
    )  # fmt: skip
    return path


def test_a_longer_clip_is_trimmed_to_the_frame(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "five.mp4", SMALL, 5.0, audio=True)
    report = conform_clip(source, tmp_path / "four.mp4", 4.0, SMALL)
    assert (report.action, report.path, report.frames) == ("encoded", tmp_path / "four.mp4", 120)
    assert report.trimmed == pytest.approx(1.0, abs=0.02)
    assert (report.slowdown, report.held, report.warning()) == (1.0, 0.0, None)
    info = details(report.path)
    assert info == report.output
    assert info.duration == pytest.approx(4.0, abs=1 / 30)
    assert conforms(info, SMALL)
    assert (info.audio_codec, info.audio_sample_rate, info.audio_channels) == (
        "aac", 48000, "stereo",
    )  # fmt: skip
    assert len(packets(report.path)[0]) == 120  # exactly round(4 * 30) frames
    assert sound_seconds(report.path) == pytest.approx(4.0, abs=1e-3)
    # Trimmed at the end: the picture is not shifted or retimed.
    made, kept = all_frames(source), all_frames(report.path)
    assert len(kept) == 120
    for index in (0, 60, 119):
        assert mean_difference(kept[index], made[index]) < 2, index
    assert mean_difference(kept[119], made[149]) > 4  # the last second is gone
    assert tone_level(samples(report.path), 3.0, 3.9, 330) > 300  # its sound kept to the end


def test_a_scene_that_is_not_a_whole_number_of_frames_rounds_to_the_nearest(
    tmp_path: Path,
) -> None:
    source = make_clip(tmp_path / "five.mp4", SMALL, 5.0)
    report = conform_clip(source, tmp_path / "out.mp4", 2.345, SMALL)
    assert report.frames == len(packets(report.path)[0]) == 70  # 2.345 s * 30 = 70.35
    assert report.seconds == pytest.approx(70 / 30)
    assert report.audio == "none"
    assert 1 not in packets(report.path)  # a clip without sound stays without


def test_a_shorter_clip_is_slowed_down_within_the_limit(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "short.mp4", SMALL, 3.6, audio=True)
    report = conform_clip(source, tmp_path / "out.mp4", 4.0, SMALL)
    assert report.slowdown == pytest.approx(4.0 / 3.6, abs=1e-3)
    assert (report.held, report.trimmed) == (0.0, 0.0)
    assert report.warning("clip 2") == "clip 2 was 3.6 s for a 4 s scene: slowed down 1.11x"
    assert len(packets(report.path)[0]) == 120
    assert sound_seconds(report.path) == pytest.approx(4.0, abs=1e-3)
    made, slowed = all_frames(source), all_frames(report.path)
    assert mean_difference(slowed[0], made[0]) < 2
    assert mean_difference(slowed[-1], made[-1]) < 2  # it ends where the source ends
    assert mean_difference(slowed[-6], made[-1]) > 4  # still moving: not a hold
    # The sound is slowed with the picture (pitch kept) and lasts to the end.
    assert tone_level(samples(report.path), 3.2, 3.9, 330) > 300


def test_a_much_shorter_clip_is_slowed_then_held_on_its_last_frame(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "short.mp4", SMALL, 3.1, audio=True)
    report = conform_clip(source, tmp_path / "out.mp4", 4.0, SMALL)
    assert report.slowdown == MAX_SLOWDOWN
    assert report.held == pytest.approx(4.0 - 3.1 * MAX_SLOWDOWN, abs=1e-3)
    assert report.stretched
    assert report.warning("clip 3") == (
        "clip 3 was 3.1 s for a 4 s scene: slowed down 1.25x, held its last frame 0.1 s"
    )
    assert len(packets(report.path)[0]) == 120
    assert report.output is not None
    assert report.output.duration == pytest.approx(4.0, abs=1 / 30)
    assert sound_seconds(report.path) == pytest.approx(4.0, abs=1e-3)
    last = all_frames(source)[-1]
    frames = all_frames(report.path)
    held = round(report.held * 30)  # 0.125 s: 3 or 4 frames, plus the frame it holds
    for frame in frames[-held - 1 :]:
        assert mean_difference(frame, last) < 2
    assert mean_difference(frames[-held - 12], last) > 4  # before the hold it moves


def test_sound_outlasting_the_picture_still_gives_the_frames_asked(tmp_path: Path) -> None:
    # 3 s of picture, 3.3 s of sound: the probe says 3.3 s (the longer stream's).
    source = tmp_path / "ragged.mp4"
    ffmpeg.run(["-f", "lavfi", "-i", "testsrc2=s=360x640:r=30:d=3", "-f", "lavfi",
                "-i", "sine=f=330:d=3.3", "-c:v", "libx264", "-preset", "veryfast",
                "-pix_fmt", "yuv420p", "-c:a", "aac", str(source)])  # fmt: skip
    assert details(source).duration == pytest.approx(3.3, abs=0.03)
    report = conform_clip(source, tmp_path / "out.mp4", 4.0, SMALL)
    assert len(packets(report.path)[0]) == 120
    assert sound_seconds(report.path) == pytest.approx(4.0, abs=1e-3)


def test_a_right_clip_is_not_encoded_again(tmp_path: Path) -> None:
    source = right_clip(tmp_path / "right.mp4", SMALL, 4.0)
    before = source.read_bytes()
    report = conform_clip(source, tmp_path / "out.mp4", 4.0, SMALL)
    assert (report.action, report.path) == ("unchanged", source)
    assert report.output is not None and report.output.duration == pytest.approx(4.0, abs=0.01)
    assert not (tmp_path / "out.mp4").exists()
    assert source.read_bytes() == before
    # Half a frame off still is the scene's length; more is not.
    assert conform_clip(source, tmp_path / "out.mp4", 4.01, SMALL).action == "unchanged"
    assert conform_clip(source, tmp_path / "out.mp4", 3.9, SMALL).action == "encoded"


def test_a_right_picture_with_other_sound_is_copied_and_its_sound_redone(
    tmp_path: Path,
) -> None:
    source = right_clip(tmp_path / "right.mp4", SMALL, 4.0, sound="sine=f=330:r=44100:d=4.2")
    assert details(source).audio_sample_rate == 44100
    kept = conform_clip(source, tmp_path / "kept.mp4", 4.0, SMALL, audio="keep")
    assert (kept.action, kept.audio) == ("remuxed", "kept")
    assert video_md5(kept.path) == video_md5(source)
    assert kept.output is not None
    assert (kept.output.audio_codec, kept.output.audio_sample_rate) == ("aac", 48000)
    assert sound_seconds(kept.path) == pytest.approx(4.0, abs=1e-3)
    dropped = conform_clip(source, tmp_path / "dropped.mp4", 4.0, SMALL, audio="drop")
    assert (dropped.action, dropped.audio) == ("remuxed", "dropped")
    assert video_md5(dropped.path) == video_md5(source)
    assert list(packets(dropped.path)) == [0]
    # Already 48 kHz stereo AAC: nothing to do at all.
    assert conform_clip(kept.path, tmp_path / "again.mp4", 4.0, SMALL).action == "unchanged"


def test_drop_encodes_without_sound(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "five.mp4", SMALL, 5.0, audio=True)
    report = conform_clip(source, tmp_path / "out.mp4", 4.0, SMALL, audio="drop")
    assert (report.action, report.audio) == ("encoded", "dropped")
    assert list(packets(report.path)) == [0]


def test_a_720p_portrait_clip_fills_the_platform_frame(tmp_path: Path) -> None:
    spec = PLATFORMS[Platform.tiktok]
    source = make_clip(tmp_path / "veo.mp4", spec, 2.5, fps=24, size=(720, 1280))
    report = conform_clip(source, tmp_path / "out.mp4", 2.0, spec, threads=2)
    assert report.resized
    assert report.output is not None
    info = report.output
    assert (info.width, info.height, info.fps, info.video_profile) == (1080, 1920, 30.0, "High")
    assert len(packets(report.path)[0]) == 60
    # Same aspect: scaled up to fill it, no bars (the corners are testsrc2's picture).
    corner = run_ffmpeg("-ss", "1", "-i", str(report.path), "-frames:v", "1",
                        "-vf", "crop=60:60:0:300", "-f", "rawvideo", "-pix_fmt", "rgb24",
                        "pipe:1")  # fmt: skip
    assert max(corner) > 100


def test_progress_is_heard_and_a_stop_ends_the_run(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "five.mp4", SMALL, 5.0)
    heard: list[float] = []
    conform_clip(source, tmp_path / "out.mp4", 4.0, SMALL, on_progress=heard.append)
    assert heard and heard[-1] <= 1.0 and heard == sorted(heard)
    stop = threading.Event()
    stop.set()
    with pytest.raises(ConformStopped, match="stopped"):
        conform_clip(source, tmp_path / "stopped.mp4", 4.0, SMALL, stop=stop)
    # Set while FFmpeg runs: killed at its next progress report, nothing half-written left.
    late = threading.Event()
    long_source = make_clip(tmp_path / "long.mp4", SMALL, 10.0)
    with pytest.raises(ConformStopped):
        conform_clip(long_source, tmp_path / "late.mp4", 10.0, PLATFORMS[Platform.tiktok],
                     on_progress=lambda _: late.set(), stop=late)  # fmt: skip
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "five.mp4", "long.mp4", "out.mp4",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("outputs")
    empty = work / "empty.mp4"
    empty.write_bytes(b"")
    noise = work / "noise.mp4"
    noise.write_bytes(bytes((index * 7919 + 13) % 251 for index in range(50_000)))
    still = work / "still.mp4"  # a provider's preview image under a video's name
    ffmpeg.run(["-f", "lavfi", "-i", "testsrc2=s=360x640", "-frames:v", "1", "-c:v", "png",
                "-f", "image2", "-update", "1", str(still)])  # fmt: skip
    sound = work / "sound.m4a"
    ffmpeg.run(["-f", "lavfi", "-i", "sine=d=5", "-c:a", "aac", str(sound)])
    good = make_clip(work / "good.mp4", SMALL, 5.0, audio=True)
    # A download cut short: its index (first) survives, most of its frames do not.
    cut = work / "cut.mp4"
    whole = right_clip(work / "whole.mp4", SMALL, 5.0)
    cut.write_bytes(whole.read_bytes()[:30_000])
    return {
        "empty": empty, "noise": noise, "still": still, "sound": sound,
        "short": make_clip(work / "short.mp4", SMALL, 1.0), "good": good, "cut": cut,
        "missing": work / "missing.mp4",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing", "empty or not readable as media"),
        ("empty", "empty or not readable as media"),
        ("noise", "empty or not readable as media"),
        ("still", r"still image \(png\)"),
        ("sound", r"no video stream \(only aac sound\)"),
        ("short", r"lasts 1\.00 s where 5 s was asked \(more than 1\.2 s off\)"),
    ],
)
def test_check_output_refuses_what_cannot_be_a_clip(
    outputs: dict[str, Path], name: str, reason: str
) -> None:
    problem = check_output(probe_output(outputs[name]), 5.0)
    assert problem is not None and re.search(reason, problem), problem


def test_check_output_accepts_a_good_clip(outputs: dict[str, Path]) -> None:
    info = probe_output(outputs["good"])
    assert info is not None and check_output(info, 5.0) is None
    assert check_output(info, 4.0) is None  # a second off: Kling's 5 s for a 4 s ask


def test_a_cut_download_passes_the_probe_but_not_the_conform(
    outputs: dict[str, Path], tmp_path: Path
) -> None:
    info = probe_output(outputs["cut"])
    assert info is not None and check_output(info, 5.0) is None  # its index claims 5 s
    with pytest.raises(MediaError, match="holds less than the 5.00 s it claims"):
        conform_clip(outputs["cut"], tmp_path / "out.mp4", 4.0, SMALL, known=info)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    ("seconds", "asked", "ok"),
    [
        (5.04, 5.0, True), (4.0, 5.0, True), (3.76, 5.0, True), (3.74, 5.0, False),
        (6.3, 5.0, False), (10.0, 8.0, True), (5.9, 8.0, False), (1.1, 2.0, True),
        (0.9, 2.0, False), (3.1, 2.0, False), (0.0, 2.0, False),
    ],
)  # fmt: skip
def test_the_length_tolerance_is_a_second_or_a_quarter(
    seconds: float, asked: float, ok: bool
) -> None:
    info = MediaDetails(duration=seconds, width=720, height=1280, fps=24.0, video_codec="h264")
    assert (check_output(info, asked) is None) == ok
