"""``make bench`` keeps working: a tiny run of its harness (the embedded stack as ``storyreel up``
starts it, in separate processes) through B2 and B3, and B5b (the default finish three ways)
on two short clips. Figures are not judged here; the benchmark reports them
(docs/performance.md)."""

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
