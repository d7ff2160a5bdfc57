"""The embedded stack for benchmarks: what ``storyreel up`` runs, as it runs it.

The Temporal dev server (on its SQLite file), the simulator, the worker and the API are separate
processes (``storyreel.stack.Stack``), so the figures are those of the stack a user starts, not
of one event loop doing everything. The benchmark itself is a client: it starts generations
through the API or a Temporal client, and reads what users read.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from activities.simulator import SimulatorConfig
from storyreel.db import open_records
from storyreel.providers import PROVIDERS
from storyreel.settings import Settings
from storyreel.stack import Ports, free_port
from storyreel.stack import Stack as EmbeddedStack
from storyreel.temporal import connect


@dataclass
class Stack:
    client: Client
    settings: Settings
    key: str
    embedded: EmbeddedStack

    @property
    def simulator_url(self) -> str:
        return self.embedded.simulator

    @property
    def api_url(self) -> str:
        return self.embedded.api_url

    @property
    def pids(self) -> dict[str, int]:
        """The stack's processes (stopped ones too) by name."""
        return {name: process.pid for name, process in self.embedded.processes.items()}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.simulator_url, timeout=30) as http:
            answer = await http.request(method, path, **kwargs)
            answer.raise_for_status()
            return answer.json()


def bench_environment(poll_interval: float) -> dict[str, str]:
    """Settings of a benchmark run (every process reads them from its environment)."""
    return {
        # B8 runs Replicate's models on the simulator's copy of Replicate.
        "STORYREEL_CLIP_PROVIDERS": json.dumps(["local", "simulator", "replicate"]),
        "STORYREEL_REPLICATE_POLL_INTERVAL": str(poll_interval),
        "STORYREEL_PROVIDER_LIMITS": json.dumps(
            {"simulator": {"max_concurrent": 1000}, "local": {"max_concurrent": 8}}
        ),
        # A benchmark is one heavy user: the per-user quotas would measure themselves.
        "STORYREEL_MAX_RUNNING_GENERATIONS": "100000",
        "STORYREEL_REQUESTS_PER_MINUTE": "10000000",
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment (the stack's children inherit it)."""
    saved = {
        name: os.environ.get(name)
        for name in [*values, "REPLICATE_API_TOKEN", "STORYREEL_PUBLIC_URL"]
    }
    os.environ.pop("STORYREEL_PUBLIC_URL", None)
    os.environ.pop("REPLICATE_API_TOKEN", None)  # never a real provider from a benchmark
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@asynccontextmanager
async def stack(
    data_dir: Path,
    simulator: SimulatorConfig,
    *,
    poll_interval: float = 0.5,
    webhooks: bool = False,
    fallback_poll: float = 60.0,
    clip_concurrency: int | None = None,
    workers: dict[str, str | None] | None = None,
) -> AsyncIterator[Stack]:
    """The embedded stack on free ports under ``data_dir``, stopped on exit; with ``webhooks``
    its API is the public URL the simulator calls back; ``workers``: the worker processes by
    name and queues (default: one ``worker`` on every queue)."""
    ports = Ports(api=free_port(), temporal=free_port(), ui=free_port(), simulator=free_port())
    embedded = EmbeddedStack(data_dir.resolve(), ports)
    if workers is not None:
        embedded.workers = workers
    values = {**bench_environment(poll_interval), **embedded.env_overrides()}
    # Every remote provider on the simulator's copy of its protocol, whatever this shell
    # configures (``storyreel up`` lets a real key win; a benchmark never calls a provider).
    for spec in PROVIDERS.values():
        if spec.simulator_env:
            values.update(spec.simulated(embedded.simulator))
    if clip_concurrency is not None:
        values["STORYREEL_PROVIDER_LIMITS"] = json.dumps(
            {"simulator": {"max_concurrent": clip_concurrency}, "local": {"max_concurrent": 8}}
        )
    if webhooks:
        values["STORYREEL_PUBLIC_URL"] = embedded.api_url
        values["STORYREEL_WEBHOOK_FALLBACK_POLL_SECONDS"] = str(fallback_poll)
    with environment(values):
        settings = Settings(_env_file=None)
        try:
            # On the main thread: children get a parent-death signal tied to the forking thread.
            embedded.start()
            records = open_records(settings)
            try:
                key = records.create_api_key(records.create_user("bench"))
            finally:
                records.dispose()
            client = await connect(settings)
            s = Stack(client, settings, key, embedded)
            await s.sim("POST", "/_sim/config", json=simulator.model_dump(exclude={"data_dir"}))
            yield s
        finally:
            await asyncio.to_thread(embedded.stop)
