"""Reading a running generation never waits on the workflow's worker.

The run writes its record at every stage and clip end; ``GET`` serves that record with the
live percent of running clips from Temporal's own view of their heartbeats. So a state read
costs a database read and one ``describe``, however busy (or absent) the workflow worker is.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from activities.providers import ClipProvider
from storyreel.db import open_records
from storyreel.settings import Settings
from tests.api.conftest import serve_api
from tests.api.test_generations import body
from tests.fakes import SleepyProvider
from tests.workflows.conftest import running_worker


async def until(
    http: httpx.AsyncClient, gid: str, check: Any, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = await http.get(f"/v1/generations/{gid}")
        assert answer.status_code == 200, answer.text
        view: dict[str, Any] = answer.json()
        if check(view):
            return view
        assert time.monotonic() < deadline, f"condition not reached: {view}"
        await asyncio.sleep(0.1)


def rendering(view: dict[str, Any]) -> list[float]:
    return [c["progress"] for c in view["clips"] if c["status"] == "rendering"]


async def test_state_reads_need_no_workflow_worker(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    providers: dict[str, ClipProvider] = {"sleepy": SleepyProvider(prepared_clip, 15.0)}
    records = open_records(settings)
    key = records.create_api_key(records.create_user("reader"))
    server, task, url = await serve_api(settings, client)
    headers = {"Authorization": f"Bearer {key}"}
    # A short client timeout: a read that queried the (stopped) workflow worker would hang.
    async with (
        httpx.AsyncClient(base_url=url, timeout=5, headers=headers) as http,
        running_worker(client, settings, providers, queues=["clips:sleepy"]),
    ):
        try:
            async with running_worker(client, settings, providers, queues=["workflows", "media"]):
                posted = await http.post("/v1/generations", json=body("sleepy", 2))
                assert posted.status_code == 202, posted.text
                gid = posted.json()["id"]
                await until(http, gid, lambda v: any(p > 0 for p in rendering(v)))
            # The workflow worker is gone; the clips keep rendering on their own worker.
            first = await until(http, gid, lambda v: len(rendering(v)) == 2)
            assert first["status"] == "generating" and first["stage"] == "clips"
            later = await until(
                http, gid, lambda v: sum(rendering(v)) > sum(rendering(first)) and v != first
            )
            assert later["status"] == "generating"
            # With the workflow worker back, the run completes and the record says so.
            async with running_worker(client, settings, providers, queues=["workflows", "media"]):
                final = await until(http, gid, lambda v: v["status"] == "completed", 120)
            assert [c["status"] for c in final["clips"]] == ["complete", "complete"]
        finally:
            records.dispose()
            server.should_exit = True
            await task
