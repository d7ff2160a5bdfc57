"""Measure what each storyreel role uses, idle and busy, to size container requests and limits.

    .venv/bin/python deploy/measure_resources.py --local 6 --simulator 20 --clips 4

Starts, natively and each in its own process, the roles docker-compose.yml runs: a Temporal
dev server, the simulator, one worker per task-queue kind (workflows, media, clips:local,
clips:simulator) and the API. It samples every process from /proc while idle, then while it
runs generations through the API, and prints a Markdown table:

- RSS: ``VmRSS`` of the role's process plus every descendant (FFmpeg renders are children of
  the worker that runs them, and count against its container's memory);
- CPU: ``utime + stime`` of the process, ``cutime + cstime`` of its reaped children and the
  live descendants' own times, from /proc/<pid>/stat, in clock ticks (``SC_CLK_TCK``);
  "peak cores" is the busiest 1 s window.

Numbers depend on the machine (cores bound the FFmpeg roles); the table names it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from storyreel.db import open_records
from storyreel.settings import Settings
from storyreel.stack import free_port, stop_process
from storyreel.temporal import dev_server_search_attribute_args

ROOT = Path(__file__).resolve().parents[1]

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024
SAMPLE_SECONDS = 0.25
# awaiting_retry: a clip used up its retries, which a sizing run must not hide.
ENDED = {"completed", "failed", "cancelled", "awaiting_retry"}


def children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process visible in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(tree.get(current, []))
    return found


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def cpu_ticks(pid: int, with_reaped_children: bool) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()
    # Fields 14-17 of stat(5); index 0 here is field 3 (state).
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return utime + stime + ((cutime + cstime) if with_reaped_children else 0)


@dataclass
class Role:
    """One process of the topology and what was measured of it."""

    name: str
    process: subprocess.Popen[bytes]
    idle_rss: int = 0
    peak_rss: int = 0
    busy_ticks: int = 0
    peak_cores: float = 0.0
    windows: list[tuple[float, int]] = field(default_factory=list)

    def sample(self, tree: dict[int, list[int]]) -> tuple[int, int]:
        pids = descendants(self.process.pid, tree)
        rss = sum(rss_bytes(pid) for pid in pids)
        ticks = cpu_ticks(self.process.pid, True) + sum(cpu_ticks(pid, False) for pid in pids[1:])
        return rss, ticks


@contextmanager
def topology(
    workdir: Path, latency: float, local_slots: int, media_env: dict[str, str]
) -> Iterator[tuple[list[Role], Settings, str]]:
    """Start every role; stop them all (SIGTERM, then SIGKILL) on exit."""
    temporal_port, api_port, sim_port = free_port(), free_port(), free_port()
    settings = Settings(
        data_dir=workdir / "data",
        temporal_address=f"127.0.0.1:{temporal_port}",
        simulator_url=f"http://127.0.0.1:{sim_port}",
        _env_file=None,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYREEL_")}
    env.update(
        STORYREEL_DATA_DIR=str(settings.data_dir),
        STORYREEL_TEMPORAL_ADDRESS=settings.temporal_address,
        STORYREEL_SIMULATOR_URL=settings.simulator_url or "",
        STORYREEL_REPLICATE_POLL_INTERVAL="1.0",
        STORYREEL_MAX_RUNNING_GENERATIONS="1000",
        # Local clips are FFmpeg encodes: more at once than the cores can run only starves
        # their heartbeats (the clip attempts then time out and are retried).
        STORYREEL_PROVIDER_LIMITS=json.dumps({"local": {"max_concurrent": local_slots}}),
    )
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    temporal = str(Path(sys.executable).parent / "temporal")
    commands = {
        "temporal": [
            temporal, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(temporal_port),
            "--headless", "--db-filename", str(workdir / "temporal.db"), "--log-level", "error",
            *dev_server_search_attribute_args(),
        ],
        "simulator": [
            sys.executable, "-m", "activities.simulator", "--port", str(sim_port),
            "--latency", str(latency), "--no-render", "--log-level", "warning",
        ],
        "worker-workflows": [sys.executable, "-m", "worker", "--queues", "workflows"],
        "worker-media": [sys.executable, "-m", "worker", "--queues", "media"],
        "worker-clips-local": [sys.executable, "-m", "worker", "--queues", "clips:local"],
        "worker-clips-simulator": [sys.executable, "-m", "worker", "--queues", "clips:simulator"],
        "api": [
            sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning",
            "--ws", "websockets-sansio",
        ],
    }  # fmt: skip
    settings.data_dir.mkdir(parents=True)
    records = open_records(settings)
    key = records.create_api_key(records.create_user("measure"))
    records.dispose()
    roles: list[Role] = []
    with ExitStack() as stack:
        for name, command in commands.items():
            log = stack.enter_context((logs / f"{name}.log").open("wb"))
            role_env = {**env, **media_env} if name == "worker-media" else env
            process = subprocess.Popen(
                command, env=role_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
            roles.append(Role(name, process))
            stack.callback(stop_process, process, 45)
            if name == "temporal":
                wait_for_port(temporal_port, process)
            if name == "simulator":
                wait_for_port(sim_port, process)
        api = f"http://127.0.0.1:{api_port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{api}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {logs}")
            time.sleep(0.2)
        yield roles, settings, f"{api}|{key}"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def scenes(count: int, tag: str) -> list[dict[str, object]]:
    return [
        {"description": f"{tag} scene {index}: harbour lights at dusk", "duration": 4}
        for index in range(1, count + 1)
    ]


async def run_generations(api: str, key: str, local: int, simulated: int, clips: int) -> float:
    """Start the generations through the API and wait for all of them; return wall seconds."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=api, headers=headers, timeout=30) as http:
        started = time.monotonic()
        ids = []
        for provider, count in (("local", local), ("simulator", simulated)):
            for index in range(count):
                body = {
                    "title": f"measure {provider} {index}",
                    "scenes": scenes(clips, f"{provider}-{index}"),
                    "platform": "youtube_shorts",
                    "provider": provider,
                    "captions": True,
                    "use_cache": False,
                }
                answer = await http.post("/v1/generations", json=body)
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        pending = set(ids)
        while pending:
            # One list request per poll: per-user request limits apply to this client too.
            answer = await http.get("/v1/generations", params={"limit": 100})
            if answer.status_code != 200:
                raise RuntimeError(f"GET /v1/generations: {answer.status_code} {answer.text}")
            for item in answer.json()["items"]:
                if item["id"] in pending and item["status"] in ENDED:
                    if item["status"] != "completed":
                        raise RuntimeError(f"{item['id']} ended {item['status']}")
                    pending.discard(item["id"])
            await asyncio.sleep(1.0)
        return time.monotonic() - started


def measure(roles: list[Role], seconds: float | None, busy: asyncio.Future[float] | None) -> None:
    """Sample every role until ``seconds`` pass or ``busy`` is done."""
    start = time.monotonic()
    first = {role.name: role.sample(children_of())[1] for role in roles}
    last_window = {role.name: (start, first[role.name]) for role in roles}
    while True:
        tree = children_of()
        now = time.monotonic()
        for role in roles:
            rss, ticks = role.sample(tree)
            if busy is None:
                role.idle_rss = max(role.idle_rss, rss)
            role.peak_rss = max(role.peak_rss, rss)
            role.busy_ticks = ticks - first[role.name]
            began, base = last_window[role.name]
            if now - began >= 1.0:
                role.peak_cores = max(role.peak_cores, (ticks - base) / TICKS / (now - began))
                last_window[role.name] = (now, ticks)
        if seconds is not None and now - start >= seconds:
            return
        if busy is not None and busy.done():
            return
        time.sleep(SAMPLE_SECONDS)


def table(roles: list[Role], wall: float, args: argparse.Namespace) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {args.local} local + {args.simulator} simulator "
        f"generations x {args.clips} clips (4 s, youtube_shorts 1080x1920, captions), simulator "
        f"latency {args.latency:g} s, {args.local_slots} local clip(s) at once, media slots "
        f"{args.media_slots or 'default'}, overlay workers {args.overlay_workers or 'default'}; "
        f"busy phase {wall:.0f} s.",
        "",
        "| role | idle RSS MiB | peak RSS MiB (with FFmpeg children) | busy CPU s | "
        "avg cores busy | peak cores (1 s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for role in roles:
        cpu = role.busy_ticks / TICKS
        lines.append(
            f"| {role.name} | {role.idle_rss / MiB:.0f} | {role.peak_rss / MiB:.0f} | "
            f"{cpu:.1f} | {cpu / wall:.2f} | {role.peak_cores:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--local", type=int, default=6, help="generations with local clips")
    parser.add_argument("--simulator", type=int, default=20, help="generations on the simulator")
    parser.add_argument("--clips", type=int, default=4, help="clips per generation")
    parser.add_argument("--latency", type=float, default=5.0, help="simulator seconds per clip")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds sampled idle")
    parser.add_argument(
        "--local-slots",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="local clips rendered at once by the clips:local worker (default: cores / 2)",
    )
    parser.add_argument(
        "--media-slots",
        type=int,
        default=0,
        help="media activities at once (STORYREEL_EXECUTOR_WORKERS of the media worker; "
        "0 = the default, 4 per core)",
    )
    parser.add_argument(
        "--overlay-workers",
        type=int,
        default=0,
        help="captions burnt at once per stitch (STORYREEL_OVERLAY_MAX_WORKERS; 0 = per core)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="storyreel-measure-"))
    try:
        media_env = {
            "STORYREEL_EXECUTOR_WORKERS": str(args.media_slots),
            "STORYREEL_OVERLAY_MAX_WORKERS": str(args.overlay_workers),
        }
        started = topology(workdir, args.latency, args.local_slots, media_env)
        with started as (roles, _settings, target):
            api, key = target.split("|")
            time.sleep(3)  # let imports and the first polls settle before "idle"
            measure(roles, args.idle, None)

            async def busy_phase() -> float:
                loop = asyncio.get_running_loop()
                work = asyncio.ensure_future(
                    run_generations(api, key, args.local, args.simulator, args.clips)
                )
                await loop.run_in_executor(None, measure, roles, None, work)
                return await work

            wall = asyncio.run(busy_phase())
            sys.stdout.write(table(roles, wall, args))
    finally:
        if args.keep:
            sys.stderr.write(f"logs and data kept in {workdir}\n")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
