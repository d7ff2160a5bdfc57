"""A real API server (uvicorn on a free port) over the real dev server and worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from temporalio.client import Client

from activities.providers import ClipProvider, LocalClipProvider
from api.app import create_app
from storyreel.db import Records, open_records
from storyreel.settings import Settings
from storyreel.stack import free_port
from tests.fakes import FlakyProvider, SleepyProvider
from tests.workflows.conftest import running_worker


@dataclass
class LiveApi:
    url: str
    http: httpx.AsyncClient
    settings: Settings
    key: str
    records: Records

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def new_user(self, name: str) -> httpx.AsyncClient:
        """Another user's authenticated client (closed with the fixture's)."""
        key = self.records.create_api_key(self.records.create_user(name))
        return httpx.AsyncClient(
            base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {key}"}
        )


async def serve_api(
    settings: Settings, client: Client
) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, client),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        ws="websockets-sansio",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture
def flaky(prepared_clip: Path) -> FlakyProvider:
    return FlakyProvider(prepared_clip, 0.5, failing={2})


@pytest.fixture
def clip_providers(prepared_clip: Path, flaky: FlakyProvider) -> dict[str, ClipProvider]:
    return {
        "local": LocalClipProvider(),
        "sleepy": SleepyProvider(prepared_clip, 2.0),
        "flaky": flaky,
    }


@asynccontextmanager
async def live_stack(
    client: Client, settings: Settings, providers: dict[str, ClipProvider], user: str
) -> AsyncIterator[LiveApi]:
    """Worker, API server and an authenticated client for ``user``; all stopped on exit."""
    async with running_worker(client, settings, providers):
        server, task, url = await serve_api(settings, client)
        records = open_records(settings)
        try:
            key = records.create_api_key(records.create_user(user))
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
                yield LiveApi(url=url, http=http, settings=settings, key=key, records=records)
        finally:
            records.dispose()
            server.should_exit = True
            await task


@pytest.fixture
async def live_api(
    client: Client, settings: Settings, clip_providers: dict[str, ClipProvider]
) -> AsyncIterator[LiveApi]:
    async with live_stack(client, settings, clip_providers, "alice") as api:
        yield api
