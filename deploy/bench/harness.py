"""The embedded stack for benchmarks: dev server, simulator, worker and API in one process."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.providers import ClipProvider, ImageProvider
from activities.simulator import SimulatorConfig, create_app
from api.app import create_app as create_api
from storyreel.db import open_records
from storyreel.settings import ProviderLimit, Settings
from storyreel.temporal import SEARCH_ATTRIBUTES
from worker import build_workers, open_providers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def serve(app: FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return server, task, f"http://127.0.0.1:{port}"


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: Client
    settings: Settings
    simulator_url: str
    api_url: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.simulator_url, timeout=30) as http:
            answer = await http.request(method, path, **kwargs)
            answer.raise_for_status()
            return answer.json()


@asynccontextmanager
async def temporal() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(Path(sys.executable).parent / "temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@asynccontextmanager
async def stack(
    env: WorkflowEnvironment,
    data_dir: Path,
    simulator: SimulatorConfig,
    *,
    extra_clips: dict[str, ClipProvider] | None = None,
    extra_images: dict[str, ImageProvider] | None = None,
    poll_interval: float = 0.5,
) -> AsyncIterator[Stack]:
    """A fresh set of queues on ``env``, a simulator, a worker polling every queue, the API."""
    unique = uuid.uuid4().hex[:8]
    extra = sorted(extra_clips or {})
    settings = Settings(
        data_dir=data_dir,
        temporal_address=env.client.service_client.config.target_host,
        workflow_task_queue=f"bench-wf-{unique}",
        media_task_queue=f"bench-media-{unique}",
        clip_task_queue_prefix=f"bench-clips-{unique}",
        replicate_poll_interval=poll_interval,
        clip_providers=["local", "simulator", *extra],
        _env_file=None,
    )
    settings.provider_limits["simulator"] = ProviderLimit(max_concurrent=1000)
    # A benchmark is one heavy user: the per-user quotas would measure themselves.
    settings.max_running_generations = 100_000
    settings.requests_per_minute = 10_000_000
    for name in extra:
        settings.provider_limits[name] = ProviderLimit(max_concurrent=1000)
    async with AsyncExitStack() as exits:
        sim_server, sim_task, sim_url = await serve(create_app(simulator))
        settings.simulator_url = sim_url
        executor = exits.enter_context(ThreadPoolExecutor(settings.executor_size()))
        clips, images = await exits.enter_async_context(open_providers(settings, executor))
        clips.update(extra_clips or {})
        images.update(extra_images or {})
        records = open_records(settings)
        exits.callback(records.dispose)
        queues = ["workflows", "media", "clips:local", "clips:simulator"]
        queues += [f"clips:{name}" for name in extra]
        for worker in build_workers(
            env.client,
            settings,
            queues,
            executor,
            clip_providers=clips,
            image_providers=images,
            records=records,
        ):
            await exits.enter_async_context(worker)
        api_server, api_task, api_url = await serve(create_api(settings, env.client))
        try:
            key = records.create_api_key(records.create_user("bench"))
            yield Stack(env, env.client, settings, sim_url, api_url, key)
        finally:
            for server in (api_server, sim_server):
                server.should_exit = True
            await asyncio.gather(api_task, sim_task)
