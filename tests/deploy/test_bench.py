"""``make bench`` keeps working: a tiny run of its harness (the embedded stack as ``storyreel up``
starts it, in separate processes) through B2 and B3, B8 (fixed-length models) on two scenes, B9
(waiting reads) on one reviewed run and B10 (an upload), all on one stack as ``make bench`` runs
them; B7 (clips called back by webhooks, on its own stacks) and B5b (the default finish three
ways) on two short clips.
Figures are not judged here; the benchmark reports them (docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]


def bench(tmp_path: Path, *flags: str, timeout: float = 600) -> tuple[dict[str, Any], list[str]]:
    """``bench.py`` run as ``make bench`` runs it, with ``flags``: its results and its report."""
    out = tmp_path / "bench.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "bench" / "bench.py"), *flags, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env=clean_env(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results, run.stdout.splitlines()


@pytest.fixture(scope="module")
def on_one_stack(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], list[str]]:
    """The steps that run on the embedded stack (B2, B3, B8, B9, B10), small, in one bench run
    on one stack as ``make bench`` runs them."""
    return bench(
        tmp_path_factory.mktemp("bench"), "--only", "B2,B3,B8,B9,B10",
        "--b2-generations", "2", "--b2-rounds", "1", "--b3-generations", "2", "--b3-latency", "1",
        "--b8-models", "kwaivgi/kling-v2.1,minimax/hailuo-02", "--b8-scenes", "2.4,9.1",
        "--b8-latency", "0.5", "--b8-tiny-clips", "--b9-runs", "1", "--b9-idle-wait", "2",
        "--b10-gib", "0.05", timeout=1200,
    )  # fmt: skip


def test_a_small_bench_run_measures_b2_and_b3(
    on_one_stack: tuple[dict[str, Any], list[str]],
) -> None:
    results, lines = on_one_stack
    assert results["B2"]["bare"] > 0 and results["B2"]["ours"] > 0
    assert results["B3"]["completed"] == results["B3"]["generations"] == 2
    assert results["B3"]["gets"] > 0 and results["B3"]["get_errors"] == 0
    assert any(line.startswith("B2 ") for line in lines), lines
    assert any(line.startswith("B3 ") for line in lines), lines


def test_a_small_b5b_run_finishes_the_same_video_three_ways(tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    results, lines = bench(
        tmp_path, "--only", "B5b", "--b5b-clips", "2", "--b5b-seconds", "1", "--b5b-rounds", "1",
        "--b5b-frames", str(frames),
    )  # fmt: skip
    result = results["B5b"]
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
    assert len([line for line in lines if line.startswith("B5b ")]) == 2, lines


def test_a_small_b7_run_calls_back_every_clip_and_reads_each_once_or_twice(
    tmp_path: Path,
) -> None:
    results, lines = bench(
        tmp_path, "--only", "B7", "--b7-clips", "10", "--b7-latency", "5",
        "--b7-polling-clips", "10", timeout=900,
    )  # fmt: skip
    hooks, polled = results["B7"]["webhooks"], results["B7"]["polling"]
    assert hooks["completed_clips"] == hooks["clips"] == hooks["creates"] == 10
    assert hooks["webhooks_sent"] >= 10 and hooks["max_reads_per_clip"] <= 2
    assert polled["completed_clips"] == polled["clips"] == 10
    # Polling every 2 s a 5 s prediction reads it more than once; the webhook path does not.
    assert polled["reads_per_clip"] > hooks["reads_per_clip"]
    assert any(line.startswith("B7 ") for line in lines), lines


def test_a_small_b8_run_finishes_as_long_as_planned_on_fixed_length_models(
    on_one_stack: tuple[dict[str, Any], list[str]],
) -> None:
    results, lines = on_one_stack
    kling, hailuo = results["B8"]["runs"]
    # Kling makes 5 or 10 s, Hailuo 02 (at 1080p) 6 s: the 9.1 s scene's is slowed and held.
    assert kling["asked_seconds"] == [5.0, 10.0]
    assert hailuo["asked_seconds"] == [6.0, 6.0]
    assert kling["stretched"] == [] and len(hailuo["stretched"]) == 1
    planned = 2.4 + 9.1 - 0.5
    for run in (kling, hailuo):
        assert run["status"] == "completed", run
        assert run["planned_scenes"] == [2.4, 9.1]
        assert run["planned"] == pytest.approx(planned)
        # Within one frame per scene at 30 fps, the container's length and the picture's.
        assert run["finished"] == pytest.approx(planned, abs=2 / 30)
        assert abs(run["frames"] - planned * 30) <= 2
        assert run["ok"]
    assert results["B8"]["ok"]
    assert len([line for line in lines if line.startswith("B8 ")]) == 2, lines


def test_a_small_b9_run_wakes_a_waiter_on_approval_and_holds_an_idle_one(
    on_one_stack: tuple[dict[str, Any], list[str]],
) -> None:
    results, lines = on_one_stack
    result = results["B9"]
    assert result["completed"] == result["runs"] == 1
    assert len(result["wake"]) == 1 and result["wake"][0] < result["wait"]
    # Nothing changed while it waited: the same ETag, after its 2 s (and not before).
    assert result["idle_unchanged"] == [True] and result["idle"][0] >= 1.95
    assert result["status_changes"], "no status change was answered"
    assert len([line for line in lines if line.startswith("B9 ")]) == 2, lines


def test_a_small_b10_upload_is_measured(on_one_stack: tuple[dict[str, Any], list[str]]) -> None:
    results, lines = on_one_stack
    r = results["B10"]
    assert r["kind"] == "audio" and r["bytes"] > 50 * 2**20
    assert r["duration"] > 0 and r["rss_peak_mib"] >= r["rss_before_mib"]
    assert any(line.startswith("B10 ") for line in lines), lines
