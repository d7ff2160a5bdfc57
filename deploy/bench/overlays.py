"""Benchmark: captioning N 1080x1920 clips one by one vs on the core-bounded pool, in one run.

    python deploy/bench/overlays.py --clips 6 --seconds 4

Prints ``overlays: sequential X s, parallel Y s, ratio Z`` (Z = X / Y, higher is better) and a
line on how the parallel path was sized. Both paths caption the same source clips; with
``--repeat`` they alternate and the best time of each counts (less noise on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from activities.media import ffmpeg
from activities.media.overlay import OverlayJob, overlay_all
from storyreel.contracts import PLATFORMS, Platform

CAPTION = "The keeper climbs the winding stairs as the fog rolls in over the harbour"


def _source(path: Path, seconds: float, index: int) -> Path:
    spec = PLATFORMS[Platform.tiktok]
    ffmpeg.run(
        ["-f", "lavfi", "-i",
         f"testsrc2=s={spec.width}x{spec.height}:r={spec.fps}:d={seconds},hue=h={index * 50}",
         "-vf", "format=yuv420p", "-c:v", "libx264", "-preset", "ultrafast",
         "-r", str(spec.fps), "-video_track_timescale", str(spec.fps * 512), str(path)],
    )  # fmt: skip
    return path


def measure(
    clips: int = 6, seconds: float = 4.0, workers: int | None = None, repeat: int = 1
) -> dict[str, Any]:
    """Caption the same sources one by one and on the pool; the best time of each counts."""
    spec = PLATFORMS[Platform.tiktok]
    with tempfile.TemporaryDirectory(prefix="bench-overlays-") as work:
        root = Path(work)
        sources = [_source(root / f"src-{n}.mp4", seconds, n) for n in range(clips)]

        def jobs(kind: str) -> list[OverlayJob]:
            return [
                OverlayJob(source, root / kind / source.name, f"{n + 1}. {CAPTION}", spec)
                for n, source in enumerate(sources)
            ]

        rounds = [
            (
                overlay_all(jobs("sequential"), parallel=False),
                overlay_all(jobs("parallel"), parallel=True, max_workers=workers),
            )
            for _ in range(max(1, repeat))
        ]
    sequential = min((one for one, _ in rounds), key=lambda report: report.seconds)
    parallel = min((many for _, many in rounds), key=lambda report: report.seconds)
    return {
        "clips": clips,
        "seconds_per_clip": seconds,
        "cores": os.cpu_count(),
        "sequential": sequential.seconds,
        "parallel": parallel.seconds,
        "ratio": sequential.seconds / parallel.seconds,
        "mode": parallel.mode,
        "workers": parallel.workers,
        "threads_per_job": parallel.threads_per_job,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6, help="how many clips (default 6)")
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: cores)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best of each counts")
    args = parser.parse_args(argv)
    spec = PLATFORMS[Platform.tiktok]
    r = measure(args.clips, args.seconds, args.workers, args.repeat)
    sys.stdout.write(
        f"overlays: sequential {r['sequential']:.2f} s, parallel {r['parallel']:.2f} s, "
        f"ratio {r['ratio']:.2f}\n"
        f"({args.clips} clips x {args.seconds:g} s at {spec.width}x{spec.height}, "
        f"{r['cores']} cores; parallel path '{r['mode']}' with {r['workers']} "
        f"workers x {r['threads_per_job']} FFmpeg threads)\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
