"""The FFmpeg-backed local providers produce real, moving, correctly sized media."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from activities.media import ffmpeg
from activities.providers import LocalClipProvider, LocalImageProvider
from activities.providers.base import ClipJob, ImageJob
from storyreel.contracts import PLATFORMS, ClipStatus, Platform
from storyreel.errors import MediaError


def frame(video: Path, at: float, out: Path) -> bytes:
    ffmpeg.run(["-ss", str(at), "-i", str(video), "-frames:v", "1",
                "-f", "rawvideo", "-pix_fmt", "gray", "-s", "64x36", str(out)])  # fmt: skip
    return out.read_bytes()


def test_image_and_clip_render_for_the_platform(tmp_path: Path) -> None:
    spec = PLATFORMS[Platform.youtube]
    image = LocalImageProvider().render_sync(
        ImageJob("g", 1, "A harbour at dawn", spec, "local", 7, tmp_path)
    )
    image_info = ffmpeg.probe(image)
    assert (image_info.width, image_info.height) == (2304, 1296)

    reports: list[tuple[ClipStatus, float]] = []
    provider = LocalClipProvider()
    job = ClipJob("g", 1, "prompt", "A harbour at dawn", 2.5, spec, "local", 7, image, tmp_path)
    clip = provider.render("p-1", job, lambda s, p: reports.append((s, p)))
    info = ffmpeg.probe(clip)
    assert (info.width, info.height, info.video_codec, info.fps) == (1920, 1080, "h264", 30.0)
    assert info.duration == pytest.approx(2.5, abs=0.05)

    percents = [percent for _, percent in reports]
    assert reports[0] == (ClipStatus.rendering, 0.0)
    assert percents == sorted(percents) and percents[-1] >= 90
    # It moves: the first and last frames differ.
    assert frame(clip, 0.0, tmp_path / "a.raw") != frame(clip, 2.3, tmp_path / "b.raw")


def test_ffmpeg_is_killed_when_its_caller_is_interrupted(tmp_path: Path) -> None:
    seen: list[int] = []

    class Interrupted(Exception):
        pass

    def stop(fraction: float) -> None:
        seen.append(threading.get_ident())
        raise Interrupted

    output = tmp_path / "long.mp4"
    with pytest.raises(Interrupted):
        ffmpeg.run(
            ["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=60", "-c:v", "libx264", str(output)],
            duration=60,
            on_progress=stop,
        )
    assert seen
    assert not any(
        b"long.mp4" in p.read_bytes()
        for p in Path("/proc").glob("[0-9]*/cmdline")
        if p.exists() and _readable(p)
    )


def _readable(path: Path) -> bool:
    try:
        path.read_bytes()
    except OSError:
        return False
    return True


def test_ffmpeg_failure_carries_its_message(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="ffmpeg exited"):
        ffmpeg.run(["-i", str(tmp_path / "missing.png"), str(tmp_path / "out.mp4")])


@pytest.mark.parametrize("platform", [Platform.tiktok, Platform.youtube])
def test_storyboard_carries_a_small_label_not_the_sentence(
    platform: Platform, tmp_path: Path
) -> None:
    """The demo once showed every sentence twice: big on the storyboard the clip pans over,
    and again as the caption. The image carries a one-line label, small and near the top."""
    spec = PLATFORMS[platform]
    text = "A lighthouse keeper climbs the spiral stairs at dawn, lantern in hand."
    image = LocalImageProvider().render_sync(ImageJob("g", 1, text, spec, "l", 3, tmp_path))
    (tmp_path / "edited").mkdir()
    width, height = round(spec.width * 1.2) // 2 * 2, round(spec.height * 1.2) // 2 * 2
    raw = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", str(image),
         "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    assert len(raw) == width * height
    lit = [y for y in range(height) if max(raw[y * width : (y + 1) * width]) >= 245]
    assert lit, "no text drawn at all"
    # Inside every frame of the pan (which moves down by a sixth of the image) and above the
    # middle; no taller than two lines of small type.
    assert height / 6 < lit[0] and lit[-1] < height * 0.35, (lit[0], lit[-1], height)
    assert lit[-1] - lit[0] < height * 0.04, (lit[-1] - lit[0], height)
    edited = LocalImageProvider().render_sync(
        ImageJob("g", 1, text + " Rain.", spec, "l", 3, tmp_path / "edited")
    )
    assert edited.read_bytes() != image.read_bytes(), "an edited scene must redraw differently"
