"""``make bench`` keeps working: a tiny run of its harness (the embedded stack as ``storyreel up``
starts it, in separate processes) through B2 and B3. Figures are not judged here; the
benchmark reports them (docs/performance.md)."""

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
