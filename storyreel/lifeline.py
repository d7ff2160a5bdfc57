"""The stack's processes end with ``storyreel up``, whatever ends it, and leave no stale stack.

Three layers, because each covers what the others cannot:

- ``up`` stops its children in order on Ctrl-C, SIGTERM and SIGHUP (see the CLI);
- each child asks Linux for a parent-death signal, so it ends even when ``up`` is SIGKILLed;
- a small guard process (``python -m storyreel.lifeline``), in its own session, holds a pipe
  from ``up``: when ``up`` ends, however, the pipe closes and the guard stops every child's
  *process group* (TERM, a grace period, then KILL), so grandchildren (FFmpeg under the worker)
  go too, which a parent-death signal alone would leave running.

A pid file in the data dir names the processes of the stack; a start that finds it with live
processes and a dead ``up`` (a crash, or a guard that was killed too) stops them first.
Processes of an older ``up`` that wrote no pid file are found by their working directory (the
data dir) and their command.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PID_FILE = "stack.pid.json"
PR_SET_PDEATHSIG = 1
GUARD_GRACE_SECONDS = 15.0
# What the stack's processes run (argv fragments): enough to tell them from anything else whose
# working directory happens to be the data dir (a shell, an editor).
STACK_COMMANDS = (("server", "start-dev"), ("activities.simulator",), ("worker",), ("api.app",))


def die_with_parent(signum: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``signum`` when its parent ends (Linux only).

    The signal fires when the *thread* that forked ends, so spawn from the main thread. If the
    parent is already gone by the time the child asks (a race with its death), the child ends.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here: not between fork and exec
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# -- processes, from /proc --------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def started(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, names a process uniquely."""
    fields = _stat(pid)
    return int(fields[19]) if fields and fields[0] != "Z" else None


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process is in process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and fields[0] != "Z" and int(fields[2]) == pgid:
                return True
    return False


def stop_groups(groups: Iterable[int], grace: float) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds for them to empty, then SIGKILL."""
    groups = list(groups)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(map(group_alive, groups)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _runs_stack_command(argv: list[str]) -> bool:
    return any(all(part in argv for part in command) for command in STACK_COMMANDS)


def _is_up(argv: list[str]) -> bool:
    return any(arg.endswith("storyreel") for arg in argv[:2]) and "up" in argv


# -- the pid file and stale stacks ------------------------------------------------------------


class PidFile:
    """``data_dir/stack.pid.json``: the ``up`` process and its children, with start times."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / PID_FILE
        self.processes: dict[str, list[int]] = {}

    def add(self, name: str, pid: int) -> None:
        self.processes[name] = [pid, started(pid) or 0]
        up = [os.getpid(), started(os.getpid()) or 0]
        partial = self.path.with_suffix(".part")
        partial.write_text(json.dumps({"up": up, "processes": self.processes}), "utf-8")
        partial.replace(self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class LiveStack(Exception):
    """Another ``storyreel up`` is running on this data dir."""


def _recorded(data_dir: Path) -> dict[str, int]:
    """Live processes the pid file names; LiveStack if its ``up`` still runs."""
    try:
        record = json.loads((data_dir / PID_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    up, up_start = record.get("up", [0, 0])
    if up != os.getpid() and up_start and started(up) == up_start:
        raise LiveStack(f"another storyreel up (pid {up}) runs on {data_dir}: stop it first")
    return {
        name: pid
        for name, (pid, start) in record.get("processes", {}).items()
        if start and started(pid) == start
    }


def _unrecorded(data_dir: Path) -> dict[str, int]:
    """Stack processes working in ``data_dir`` whose ``up`` is gone (an older ``up``)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if Path(os.readlink(entry / "cwd")) != data_dir:
                continue
            argv, fields = _argv(int(entry.name)), _stat(int(entry.name))
            if not fields or fields[0] == "Z" or not _runs_stack_command(argv):
                continue
            if _is_up(_argv(int(fields[1]))):
                if int(fields[1]) != os.getpid():
                    raise LiveStack(
                        f"another storyreel up (pid {fields[1]}) runs on {data_dir}: stop it first"
                    )
                continue
            found[" ".join(argv[1:3]) or entry.name] = int(entry.name)
    return found


def clear_stale(data_dir: Path, grace: float = GUARD_GRACE_SECONDS) -> list[str]:
    """Stop what is left of an earlier stack of ``data_dir``; say what it was.

    Raises :class:`LiveStack` when that stack's ``up`` is still running.
    """
    stale = {**_unrecorded(data_dir), **_recorded(data_dir)}
    # Each child leads its own process group (its own session): stop the whole group.
    groups = {int(fields[2]) for pid in stale.values() if (fields := _stat(pid)) is not None}
    stop_groups(groups, grace)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    return [f"{name} (pid {pid})" for name, pid in sorted(stale.items(), key=lambda i: i[1])]


# -- the guard --------------------------------------------------------------------------------


def guard(lines: Iterable[str], grace: float = GUARD_GRACE_SECONDS) -> None:
    """Collect process groups, one per line, until the input ends; then stop them all."""
    groups = {int(line) for line in lines if line.strip().isdigit()}
    stop_groups(groups, grace)


if __name__ == "__main__":
    # Terminal signals are for 'up'; the guard outlives it by design and ends on its own.
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    guard(sys.stdin)
