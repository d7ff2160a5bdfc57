"""Captions: placed in each platform's safe area, drawn literally, many at once with a fallback."""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import pytest

from activities.media import ffmpeg
from activities.media.export import details
from activities.media.layout import MAX_LINES, caption_box, wrap_caption
from activities.media.overlay import OverlayJob, overlay_all, overlay_caption
from storyreel.contracts import PLATFORMS, Platform
from storyreel.errors import MediaError

from .helpers import SMALL, make_clip, mean_difference, rgb_frame

LONG = " ".join(["lighthouse"] * 80)


@pytest.mark.parametrize("platform", list(Platform))
def test_caption_box_stays_in_the_safe_area(platform: Platform) -> None:
    spec = PLATFORMS[platform]
    for caption in ("Dawn.", "The keeper climbs the winding stairs " * 3, LONG):
        lines, size = wrap_caption(caption, spec)
        x, y, w, h = caption_box(spec, len(lines), size)
        assert 1 <= len(lines) <= MAX_LINES
        assert size >= min(spec.width, spec.height) * 0.05 * 0.7 - 1
        if spec.height > spec.width:  # feed UI covers the bottom 20 % and the sides
            assert x >= spec.width * 0.06 - 1 and x + w <= spec.width * 0.94 + 1
            assert y + h <= spec.height * 0.80
        else:  # lower third, 5 % margins
            assert x >= spec.width * 0.05 - 1 and x + w <= spec.width * 0.95 + 1
            assert y >= spec.height * 2 / 3 - h and y + h <= spec.height * 0.95 + 1
    assert wrap_caption(LONG, spec)[0][-1].endswith("…")


def test_caption_is_literal_text_and_audio_is_copied(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", SMALL, 1.0, "navy", audio=True)
    out = tmp_path / "out.mp4"
    # Would change every frame if FFmpeg expanded it; quotes and colons must survive quoting.
    caption = "%{pts} it's 100% 'quoted': a\\b"
    seen: list[float] = []
    overlay_caption(source, out, caption, SMALL, on_progress=seen.append)
    info = details(out)
    assert (info.width, info.height, info.fps, info.audio_codec) == (360, 640, 30.0, "aac")
    assert info.duration == pytest.approx(1.0, abs=0.05)
    lines, size = wrap_caption(caption, SMALL)
    box = caption_box(SMALL, len(lines), size)
    early, late = rgb_frame(out, 0.1, box), rgb_frame(out, 0.9, box)
    assert mean_difference(early, rgb_frame(source, 0.1, box)) > 20
    assert mean_difference(early, late) < 2


def _jobs(tmp_path: Path, count: int = 3, seconds: float = 1.0) -> list[OverlayJob]:
    jobs = []
    for n in range(1, count + 1):
        clip = make_clip(tmp_path / f"in-{n}.mp4", SMALL, seconds, ("red", "teal", "olive")[n % 3])
        jobs.append(OverlayJob(clip, tmp_path / "out" / f"{n}.mp4", f"Scene {n}", SMALL))
    return jobs


def _all_made(jobs: list[OverlayJob]) -> None:
    for job in jobs:
        info = ffmpeg.probe(job.dst)
        assert (info.video_codec, info.width) == ("h264", 360)
        assert info.duration == pytest.approx(1.0, abs=0.05)


def test_parallel_and_sequential_paths(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path)
    fractions: list[float] = []
    parallel = overlay_all(jobs, parallel=True, max_workers=2, on_progress=fractions.append)
    assert parallel.mode == "parallel" and parallel.workers == 2
    assert len(parallel.job_seconds) == 3 and all(s > 0 for s in parallel.job_seconds)
    assert fractions and fractions[-1] == pytest.approx(1.0)
    _all_made(jobs)
    for job in jobs:
        job.dst.unlink()
    sequential = overlay_all(jobs, parallel=False)
    assert (sequential.mode, sequential.workers, sequential.fallback_reason) == (
        "sequential", 1, None,
    )  # fmt: skip
    _all_made(jobs)


class _NoThreads(ThreadPoolExecutor):
    def submit(self, *args, **kwargs):
        raise RuntimeError("can't start new thread")


def test_falls_back_to_one_by_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    jobs = _jobs(tmp_path)
    made: list[Executor] = []

    def failing(workers: int) -> Executor:
        made.append(_NoThreads(workers))
        return made[-1]

    with caplog.at_level(logging.WARNING, logger="activities.media.overlay"):
        report = overlay_all(jobs, parallel=True, executor_factory=failing)
    assert made, "the parallel path was tried"
    assert report.mode == "fallback"
    assert report.fallback_reason == "RuntimeError: can't start new thread"
    assert "can't start new thread" in caplog.text and "one by one" in caplog.text
    _all_made(jobs)


def test_a_real_failure_is_not_hidden_by_the_fallback(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, count=2)
    broken = OverlayJob(tmp_path / "missing.mp4", tmp_path / "out" / "x.mp4", "x", SMALL)
    with pytest.raises(MediaError, match="missing.mp4"):
        overlay_all([*jobs, broken], parallel=True)


def test_a_cancelled_caller_stops_every_ffmpeg_without_fallback(tmp_path: Path) -> None:
    jobs = _jobs(tmp_path, count=2, seconds=60.0)  # each takes seconds to caption

    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        raise Cancelled

    started = time.monotonic()
    with pytest.raises(Cancelled):
        overlay_all(jobs, parallel=True, on_progress=cancel)
    assert time.monotonic() - started < 3
    for job in jobs:  # killed before finishing: no playable output
        with pytest.raises(MediaError):
            ffmpeg.probe(job.dst)
    running = [
        p for p in Path("/proc").glob("[0-9]*/cmdline") if _contains(p, str(tmp_path).encode())
    ]
    assert not running


def _contains(path: Path, needle: bytes) -> bool:
    try:
        return needle in path.read_bytes()
    except OSError:
        return False
