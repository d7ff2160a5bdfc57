"""``storyreel up`` as a user runs it: a subprocess on free ports, driven through the CLI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from storyreel.stack import free_port

BIN = Path(sys.executable).parent


def children_of(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cli_env(api_port: int, data_dir: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYREEL_")}
    env["STORYREEL_API_URL"] = f"http://127.0.0.1:{api_port}"
    if data_dir is not None:
        env["STORYREEL_DATA_DIR"] = str(data_dir)
    return env


def test_up_serves_generates_and_stops_every_child_on_ctrl_c(tmp_path: Path) -> None:
    api, temporal, ui = free_port(), free_port(), free_port()
    up = subprocess.Popen(
        [str(BIN / "storyreel"), "up", "--no-demo", "--data-dir", str(tmp_path / "data"),
         "--api-port", str(api), "--temporal-port", str(temporal), "--ui-port", str(ui),
         "--simulator-port", str(free_port())],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cli_env(api),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert up.poll() is None, up.stdout.read().decode() if up.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{api}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the stack never became healthy"
            time.sleep(0.3)
        children = children_of(up.pid)
        assert len(children) >= 3, children

        script = tmp_path / "two-gulls.txt"
        script.write_text("A gull lands on the pier. Another gull steals its bread.")
        generated = subprocess.run(
            [str(BIN / "storyreel"), "generate", str(script), "--wait", "--platform", "youtube"],
            capture_output=True, text=True, env=cli_env(api, tmp_path / "data"), timeout=300,
        )  # fmt: skip
        assert generated.returncode == 0, generated.stdout + generated.stderr
        assert "Video ready: http://127.0.0.1:" in generated.stdout
        gid = generated.stdout.split("Generation ", 1)[1].split()[0]
        key_file = tmp_path / "data" / "api-key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
        video = httpx.get(
            f"http://127.0.0.1:{api}/v1/generations/{gid}/video", headers=auth, timeout=30
        )
        anonymous = httpx.get(f"http://127.0.0.1:{api}/v1/generations/{gid}", timeout=30)
        assert anonymous.status_code == 401
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"

        status = subprocess.run(
            [str(BIN / "storyreel"), "status", gid],
            capture_output=True, text=True, env=cli_env(api, tmp_path / "data"), timeout=60,
        )  # fmt: skip
        assert status.returncode == 0 and "completed" in status.stdout
        missing = subprocess.run(
            [str(BIN / "storyreel"), "retry", gid, "7"],
            capture_output=True, text=True, env=cli_env(api, tmp_path / "data"), timeout=60,
        )  # fmt: skip
        assert missing.returncode == 1 and "404" in missing.stdout

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        stragglers = [pid for pid in children if alive(pid)]
        assert stragglers == [], f"still running after Ctrl-C: {stragglers}"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        if up.stdout:
            up.stdout.close()


def test_a_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN / "storyreel"), "up", "--no-demo", "--data-dir", str(tmp_path),
             "--api-port", str(port), "--temporal-port", str(free_port()),
             "--ui-port", str(free_port()), "--simulator-port", str(free_port())],
            capture_output=True, text=True, timeout=60, env=cli_env(port),
        )  # fmt: skip
    assert result.returncode == 1
    assert f"port {port} (API) is busy" in result.stdout
    assert "--api-port" in result.stdout
