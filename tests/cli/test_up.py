"""``storyreel up`` as a user runs it: a subprocess on free ports, driven through the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from storyreel import lifeline
from storyreel.stack import free_port
from tests.conftest import clean_env

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
    env = clean_env()
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


# -- no orphans, whatever ends 'up' -------------------------------------------------------------


def up_command(data_dir: Path, api: int, temporal: int, ui: int, simulator: int) -> list[str]:
    return [str(BIN / "storyreel"), "up", "--no-demo", "--data-dir", str(data_dir),
            "--api-port", str(api), "--temporal-port", str(temporal), "--ui-port", str(ui),
            "--simulator-port", str(simulator)]  # fmt: skip


def start_up(data_dir: Path, *ports: int) -> subprocess.Popen[bytes]:
    command = up_command(data_dir, *ports)
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=cli_env(ports[0])
    )


def wait_until_healthy(up: subprocess.Popen[bytes], api: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if up.poll() is not None:
            pytest.fail(f"up exited with {up.returncode}: {output_of(up)}")
        try:
            if httpx.get(f"http://127.0.0.1:{api}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the stack never became healthy"
        time.sleep(0.3)


def output_of(up: subprocess.Popen[bytes]) -> str:
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
    out, _ = up.communicate(timeout=60)
    return out.decode(errors="replace")


def group_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[2])


def survivors(pids: set[int], groups: set[int]) -> set[int]:
    """Live processes among ``pids`` or in ``groups`` (a grandchild started later counts too)."""
    members = {int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()}
    return {
        pid for pid in pids | members if alive(pid) and (pid in pids or group_of(pid) in groups)
    }


def wait_for_no_survivors(pids: set[int], groups: set[int], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while left := survivors(pids, groups):
        assert time.monotonic() < deadline, f"still running: {sorted(left)}"
        time.sleep(0.2)


def stop_and_check(up: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """End a healthy ``up`` with ``signum``; then no process of its stack may be left."""
    stack = children_of(up.pid)
    groups = {group for pid in stack if (group := group_of(pid)) is not None}
    # Temporal, simulator, worker, API (and whatever they started)
    assert len(stack) >= 4, stack
    try:
        up.send_signal(signum)
        code = up.wait(timeout=60)
        assert code == (-signal.SIGKILL if signum == signal.SIGKILL else 0), output_of(up)
        wait_for_no_survivors(stack, groups)
    finally:
        for pid in survivors(stack, groups):  # a failed run must not leave the orphans behind
            os.kill(pid, signal.SIGKILL)


def test_no_process_of_the_stack_outlives_up_and_a_running_one_is_left_alone(
    tmp_path: Path,
) -> None:
    """One data dir and one set of ports, ended each way in turn: after a hang-up, a TERM and a
    KILL of ``up`` nothing of its stack is left, so the next ``up`` finds nothing stale to clear;
    while one runs, a second ``up`` of the same data dir is refused and leaves it alone."""
    ports = [free_port() for _ in range(4)]
    data = tmp_path / "data"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGKILL):
            up = start_up(data, *ports)
            processes.append(up)
            wait_until_healthy(up, ports[0])
            stop_and_check(up, signum)
            out = output_of(up)
            # Nothing of the stack ended before (by a hang-up, then a TERM) was left to clear.
            assert len(processes) == 1 or "stale" not in out, out

        last = start_up(data, *ports)
        processes.append(last)
        wait_until_healthy(last, ports[0])
        other_ports = [free_port() for _ in range(4)]
        second = subprocess.run(
            up_command(data, *other_ports),
            capture_output=True, text=True, timeout=60, env=cli_env(other_ports[0]),
        )  # fmt: skip
        assert second.returncode == 1
        assert f"another storyreel up (pid {last.pid}) runs on {data}" in second.stdout
        assert httpx.get(f"http://127.0.0.1:{ports[0]}/healthz", timeout=5).status_code == 200
        last.send_signal(signal.SIGINT)
        assert last.wait(timeout=60) == 0
        assert "stale" not in output_of(last)  # nothing was left to clear after the KILL
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout:
                process.stdout.close()


def orphaned_simulator(data_dir: Path, port: int) -> int:
    """A simulator as a crashed 'up' leaves it: own session, in the data dir, parent gone."""
    launcher = subprocess.run(
        [sys.executable, "-c",
         "import subprocess, sys\n"
         f"p = subprocess.Popen([sys.executable, '-m', 'activities.simulator', '--port', '{port}',"
         f" '--data-dir', 'simulator'], start_new_session=True,"
         " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
         "print(p.pid)"],
        cwd=data_dir, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    pid = int(launcher.stdout)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return pid
        except OSError:
            assert time.monotonic() < deadline, "the orphaned simulator never listened"
            time.sleep(0.2)


@pytest.mark.parametrize("pid_file", [True, False], ids=["pid-file", "older-up-without-one"])
def test_a_stale_stack_of_the_data_dir_is_cleared_and_reported(
    pid_file: bool, tmp_path: Path
) -> None:
    api, temporal, ui, simulator = (free_port() for _ in range(4))
    data = tmp_path / "data"
    data.mkdir()
    stale = orphaned_simulator(data, simulator)
    if pid_file:
        (data / lifeline.PID_FILE).write_text(
            json.dumps({"up": [stale + 10**6, 1], "processes": {
                "simulator": [stale, lifeline.started(stale)]}}),
        )  # fmt: skip
    up = start_up(data, api, temporal, ui, simulator)
    try:
        wait_until_healthy(up, api)
        assert not alive(stale)
    finally:
        out = output_of(up)
        if alive(stale):
            os.kill(stale, signal.SIGKILL)
    assert up.returncode == 0, out
    assert f"Cleared a stale stack of {data}" in out and f"(pid {stale})" in out, out
