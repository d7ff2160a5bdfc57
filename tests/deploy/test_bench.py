"""``make bench`` keeps working: a tiny run of its harness (the embedded stack as ``storyreel up``
starts it, in separate processes) through B2 and B3, B7 (clips called back by webhooks), and B5b
(the default finish three ways) on two short clips. Figures are not judged here; the benchmark
reports them (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_bench_run_measures_b2_and_b3(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "deploy" / "bench" / "bench.py"),
            "--only", "B2,B3",
            "--b2-generations", "2", "--b2-rounds", "1",
            "--b3-generations", "2", "--b3-latency", "1",
            "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["B2"]["bare"] > 0 and results["B2"]["ours"] > 0
    assert results["B3"]["completed"] == results["B3"]["generations"] == 2
    assert results["B3"]["gets"] > 0 and results["B3"]["get_errors"] == 0
    lines = run.stdout.splitlines()
    assert any(line.startswith("B2 ") for line in lines), run.stdout
    assert any(line.startswith("B3 ") for line in lines), run.stdout


def test_a_small_b5b_run_finishes_the_same_video_three_ways(tmp_path: Path) -> None:
    out, frames = tmp_path / "bench.json", tmp_path / "frames"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "deploy" / "bench" / "bench.py"),
            "--only", "B5b", "--b5b-clips", "2", "--b5b-seconds", "1", "--b5b-rounds", "1",
            "--b5b-frames", str(frames), "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())["B5b"]
    assert min(result["ours"], result["single_pass"], result["moviepy"]) > 0
    assert result["ratio"] > 0 and result["moviepy_ratio"] > 0
    assert result["overlay_mode"] == "inline"
    outputs = result["outputs"]
    assert set(outputs) == {"ours", "single_pass", "moviepy"}
    for made in outputs.values():
        assert (made["width"], made["height"], made["fps"]) == (1080, 1920, 30.0)
        assert (made["video_codec"], made["pix_fmt"], made["audio_codec"]) == (
            "h264", "yuv420p", "aac",
        )  # fmt: skip
        assert abs(made["duration"] - outputs["ours"]["duration"]) < 0.1
    assert all(Path(frame).is_file() for frame in result["frames"].values())
    lines = [line for line in run.stdout.splitlines() if line.startswith("B5b ")]
    assert len(lines) == 2, run.stdout


def test_a_small_b7_run_calls_back_every_clip_and_reads_each_once_or_twice(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [
            sys.executable, str(ROOT / "deploy" / "bench" / "bench.py"),
            "--only", "B7", "--b7-clips", "20", "--b7-latency", "5", "--b7-polling-clips", "10",
            "--out", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    hooks, polled = (json.loads(out.read_text())["B7"][side] for side in ("webhooks", "polling"))
    assert hooks["completed_clips"] == hooks["clips"] == hooks["creates"] == 20
    assert hooks["webhooks_sent"] >= 20 and hooks["max_reads_per_clip"] <= 2
    assert polled["completed_clips"] == polled["clips"] == 10
    # Polling every 2 s a 5 s prediction reads it more than once; the webhook path does not.
    assert polled["reads_per_clip"] > hooks["reads_per_clip"]
    assert any(line.startswith("B7 ") for line in run.stdout.splitlines()), run.stdout
