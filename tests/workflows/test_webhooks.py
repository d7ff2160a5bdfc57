"""Clips that wait for their provider's call: the simulator signs Replicate-style webhooks,
the real API verifies them and signals the run, the real worker copies the outputs.

Every test counts what the provider saw (creates and GETs per prediction), so a run that
quietly fell back to polling, or paid twice, fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowFailureError

from storyreel.contracts import ClipStatus, GenerationState, GenerationStatus
from storyreel.db import open_records
from storyreel.settings import Settings
from storyreel.stack import free_port
from storyreel.webhooks.replicate import signed_headers
from tests.api.conftest import serve_api
from tests.workflows.conftest import keep_history, request_for, start
from tests.workflows.test_simulator_runs import Sim, on, simulator, worker_for


@dataclass
class Api:
    url: str
    http: httpx.AsyncClient


@asynccontextmanager
async def api_for(client: Client, settings: Settings) -> AsyncIterator[Api]:
    """The real API, its address made the public URL providers call back."""
    server, task, url = await serve_api(settings, client)
    settings.public_url = url
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            yield Api(url, http)
    finally:
        server.should_exit = True
        await task


def calling_back(settings: Settings, sim: Sim, *, poll: float = 60.0) -> Settings:
    settings = on(settings, sim)
    settings.webhook_fallback_poll_seconds = poll
    return settings


async def finished(handle: Any, timeout: float = 180.0) -> GenerationState:
    state: GenerationState = await asyncio.wait_for(handle.result(), timeout)
    await keep_history(handle)
    return state


def gets(log: dict[str, Any]) -> list[int]:
    return [prediction["gets"] for prediction in log["predictions"]]


async def test_clips_complete_on_signed_webhooks_with_one_create_and_at_most_two_gets(
    client: Client, settings: Settings
) -> None:
    knobs = {"latency": 20.0, "render": False, "seed": 5, "webhook_logs_interval": 1.0}
    async with (
        simulator(**knobs, webhook_duplicate_rate=1.0) as sim,
        worker_for(client, calling_back(settings, sim)),
        api_for(client, settings) as api,
    ):
        records = open_records(settings)
        try:
            key = records.create_api_key(records.create_user("webhook-user"))
        finally:
            records.dispose()
        auth = {"Authorization": f"Bearer {key}"}
        request = request_for(3, "simulator").model_dump(
            mode="json", include={"title", "scenes", "platform", "provider", "model"}
        )
        answer = await api.http.post("/v1/generations", json=request, headers=auth)
        assert answer.status_code == 202, answer.text
        generation = answer.json()["id"]
        handle = client.get_workflow_handle(generation, result_type=GenerationState)

        # A forged delivery (no valid signature) is refused and changes nothing.
        forged = json.dumps({"id": "made-up", "status": "succeeded", "output": "x"}).encode()
        hook = f"/v1/webhooks/simulator?generation={generation}&clip=1"
        bad = await api.http.post(
            hook,
            content=forged,
            headers={
                "webhook-id": "msg_forged",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
            },
        )
        assert bad.status_code == 401
        stale = signed_headers(
            (await sim.http.get("/v1/webhooks/default/secret", headers=auth)).json()["key"],
            "msg_stale",
            forged,
            time.time() - 600,
        )
        assert (await api.http.post(hook, content=forged, headers=stale)).status_code == 400

        # While the clips render, state reads show the provider's progress from its webhooks.
        seen_progress = 0.0
        deadline = time.monotonic() + 60
        while seen_progress == 0.0 and time.monotonic() < deadline:
            state = (await api.http.get(f"/v1/generations/{generation}", headers=auth)).json()
            seen_progress = max(
                (clip["progress"] for clip in state["clips"] if clip["status"] == "rendering"),
                default=0.0,
            )
            await asyncio.sleep(0.5)
        assert 0 < seen_progress < 100, f"no live progress reached the state: {state}"

        final = await finished(handle)
        log = await sim.log()
        # Every delivery came twice: the repeats were answered 2xx and did no harm.
        replay = await api.http.get(f"/v1/generations/{generation}", headers=auth)

    assert final.status is GenerationStatus.completed
    assert [clip.status for clip in final.clips] == [ClipStatus.complete] * 3
    assert all(clip.provider == "simulator" for clip in final.clips)
    assert log["counts"]["creates"] == 3, "a clip was paid for twice"
    assert max(gets(log)) <= 2, f"GETs per prediction: {gets(log)}"
    assert log["counts"]["webhooks_duplicated"] > 0
    assert log["counts"]["webhooks_failed"] == 0, "a delivery was refused"
    assert replay.json()["status"] == "completed"


async def test_lost_webhooks_are_covered_by_the_slow_poll(
    client: Client, settings: Settings
) -> None:
    knobs = {"latency": 2.0, "render": False, "webhook_drop_rate": 1.0}
    async with (
        simulator(**knobs) as sim,
        worker_for(client, calling_back(settings, sim, poll=3.0)),
        api_for(client, settings),
    ):
        state = await finished(await start(client, settings, request_for(2, "simulator")))
        log = await sim.log()

    assert state.status is GenerationStatus.completed
    assert log["counts"]["webhooks_dropped"] > 0 and log["counts"]["webhooks_sent"] == 0
    assert log["counts"]["creates"] == 2
    # One status read found it done, one read by the copy: no 2-second polling.
    assert all(2 <= count <= 3 for count in gets(log)), gets(log)


async def test_deliveries_before_the_create_answer_are_not_lost(
    client: Client, settings: Settings
) -> None:
    knobs = {"latency": 0.2, "render": False, "create_delay": 2.0}
    async with (
        simulator(**knobs) as sim,
        worker_for(client, calling_back(settings, sim)),
        api_for(client, settings),
    ):
        started = time.monotonic()
        state = await finished(await start(client, settings, request_for(2, "simulator")))
        took = time.monotonic() - started
        log = await sim.log()

    assert state.status is GenerationStatus.completed
    assert log["counts"]["creates"] == 2 and log["counts"]["webhooks_sent"] > 0
    assert max(gets(log)) == 1, "the early deliveries were not used"
    assert took < 60, "the run waited for the fallback poll"


async def test_with_the_api_down_the_run_still_completes(
    client: Client, settings: Settings
) -> None:
    knobs = {"latency": 1.0, "render": False}
    async with simulator(**knobs) as sim, worker_for(client, calling_back(settings, sim, poll=2)):
        # Nothing listens where the provider calls: every delivery fails.
        settings.public_url = f"http://127.0.0.1:{free_port()}"
        state = await finished(await start(client, settings, request_for(2, "simulator")))
        log = await sim.log()

    assert state.status is GenerationStatus.completed
    assert log["counts"]["creates"] == 2
    assert log["counts"]["webhooks_sent"] == 0


async def test_cancelling_a_run_waiting_on_webhooks_cancels_its_predictions(
    client: Client, settings: Settings
) -> None:
    knobs = {"latency": 120.0, "render": False}
    async with (
        simulator(**knobs) as sim,
        worker_for(client, calling_back(settings, sim)),
        api_for(client, settings),
    ):
        handle = await start(client, settings, request_for(3, "simulator"))
        deadline = time.monotonic() + 60
        # Submitted and waiting: no clip activity is pending while the predictions run.
        while True:
            description = await handle.describe()
            pending = description.raw_description.pending_activities
            if (await sim.log())["counts"]["creates"] == 3 and not pending:
                break
            assert time.monotonic() < deadline, "the clips were never left waiting"
            await asyncio.sleep(0.2)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query("get_state", result_type=GenerationState)
        log = await sim.log()

    assert state.status is GenerationStatus.cancelled
    assert log["counts"]["cancels"] == 3, "a prediction kept running (and billing) upstream"
    assert all(prediction["canceled"] for prediction in log["predictions"])
