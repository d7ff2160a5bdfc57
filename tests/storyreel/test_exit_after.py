"""Short-lived processes end through ``exit_after``: the exit code and messages survive the
skipped interpreter teardown (which a Temporal client's threads can crash)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(body: str) -> subprocess.CompletedProcess[str]:
    code = f"from storyreel.temporal import exit_after\n{body}\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("body", "code", "stdout", "stderr"),
    [
        ("exit_after(lambda: print('done') or 0)", 0, "done\n", ""),
        ("exit_after(lambda: 3)", 3, "", ""),
        ("import sys\nexit_after(lambda: sys.exit('no such role'))", 1, "", "no such role\n"),
        ("def boom():\n    raise RuntimeError('kaboom')\nexit_after(boom)", 1, "", "kaboom"),
    ],
    ids=["ok", "code", "message", "exception"],
)
def test_exit_code_and_output_survive(body: str, code: int, stdout: str, stderr: str) -> None:
    done = run(body)
    assert done.returncode == code, done.stderr
    assert done.stdout == stdout
    assert stderr in done.stderr


def test_a_process_that_used_a_temporal_client_exits_cleanly() -> None:
    body = (
        "import asyncio\n"
        "from temporalio.client import Client\n"
        "async def main():\n"
        "    try:\n"
        "        await Client.connect('127.0.0.1:1')\n"
        "    except RuntimeError:\n"
        "        return 0\n"
        "    return 1\n"
        "exit_after(lambda: asyncio.run(main()))"
    )
    assert run(body).returncode == 0
