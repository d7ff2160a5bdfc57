"""Chaos: the Temporal server and the API die mid-run; every generation still ends as specified.

Each scenario prints its outcome (run with ``make chaos`` to see them).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from storyreel.contracts import GenerationRequest, GenerationState, GenerationStatus
from storyreel.db import open_records
from storyreel.generations import start_generation
from storyreel.settings import Settings
from storyreel.stack import free_port, stop_process
from storyreel.temporal import dev_server_search_attribute_args
from tests.conftest import temporal_cli
from tests.workflows.conftest import request_for
from tests.workflows.test_simulator_runs import process_env, simulator

DEADLINE = 180.0


def outcome(scenario: str, text: str) -> None:
    sys.stderr.write(f"\n[chaos] {scenario}: {text}\n")


class DevServer:
    """A Temporal dev server on a SQLite file that can be killed and started again."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [temporal_cli(), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
             "--port", str(self.port), "--db-filename", str(self.db), "--log-level", "error",
             *dev_server_search_attribute_args()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    async def client(self) -> Client:
        deadline = time.monotonic() + 60
        while True:
            try:
                return await Client.connect(self.address, data_converter=pydantic_data_converter)
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.3)


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path / "temporal.db")
    server.start()
    try:
        yield server
    finally:
        if server.process and server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def spawn(settings: Settings, *command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *command],
        env=process_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_temporal_server_restarted_mid_run(dev_server: DevServer, settings: Settings) -> None:
    settings.temporal_address = dev_server.address
    async with simulator(latency=6, render=False) as sim:
        settings.simulator_url = sim.url
        worker = spawn(settings, "-m", "worker", "--queues", "workflows,media,clips:simulator")
        try:
            client = await dev_server.client()
            handle = await start_generation(client, settings, request_for(3, "simulator"))
            deadline = time.monotonic() + 60
            while (await sim.log())["counts"]["creates"] < 3:
                assert time.monotonic() < deadline, "clips never started"
                await asyncio.sleep(0.2)
            dev_server.kill()
            outcome("temporal restart", "dev server SIGKILLed with 3 clips rendering")
            dev_server.start()
            client = await dev_server.client()
            handle = client.get_workflow_handle(handle.id, result_type=GenerationState)
            state = await asyncio.wait_for(handle.result(), timeout=DEADLINE)
        finally:
            stop_process(worker, 60)
        log = await sim.log()
    assert state.status is GenerationStatus.completed
    assert log["counts"]["creates"] == 3, "a prediction was created twice"
    outcome("temporal restart", f"run {state.status.value}, {log['counts']['creates']} predictions")


async def test_api_restarted_mid_run(client: Client, settings: Settings) -> None:
    port = free_port()
    async with simulator(latency=5, render=False) as sim:
        settings.simulator_url = sim.url
        records = open_records(settings)
        key = records.create_api_key(records.create_user("chaos"))
        records.dispose()
        worker = spawn(settings, "-m", "worker", "--queues", "workflows,media,clips:simulator")
        api_command = ("-m", "uvicorn", "api.app:create_app", "--factory",
                       "--host", "127.0.0.1", "--port", str(port))  # fmt: skip
        api = spawn(settings, *api_command)
        headers = {"Authorization": f"Bearer {key}"}
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
                gid = await _post_when_up(http)
                api.send_signal(signal.SIGKILL)
                api.wait(timeout=30)
                outcome("api restart", "API SIGKILLed right after the POST")
                api = spawn(settings, *api_command)
                deadline = time.monotonic() + DEADLINE
                while True:
                    try:
                        view = (await http.get(f"/v1/generations/{gid}")).json()
                    except httpx.TransportError:
                        view = {"status": "unreachable"}
                    if view["status"] in ("completed", "failed", "cancelled"):
                        break
                    assert time.monotonic() < deadline, view
                    await asyncio.sleep(0.3)
        finally:
            stop_process(api, 60)
            stop_process(worker, 60)
        log = await sim.log()
    assert view["status"] == "completed"
    assert log["counts"]["creates"] == 2
    outcome("api restart", "nothing happened to the run: completed, 2 predictions for 2 clips")


async def _post_when_up(http: httpx.AsyncClient) -> str:
    body = request_for(2, "simulator").model_dump(
        mode="json", exclude_none=True, include=set(GenerationRequest.model_fields)
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = await http.post("/v1/generations", json=body)
            assert answer.status_code == 202, answer.text
            return str(answer.json()["id"])
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API never came up"
            await asyncio.sleep(0.3)


async def test_a_run_awaiting_approval_survives_worker_and_server_restarts(
    dev_server: DevServer, settings: Settings
) -> None:
    """Waiting for a person costs nothing and survives anything: the worker and the Temporal
    server both die while the storyboard waits; approved afterwards, the run completes with
    one prediction per scene, none made before the approval."""
    settings.temporal_address = dev_server.address
    queues = "workflows,media,clips:simulator"
    async with simulator(latency=1, render=False) as sim:
        settings.simulator_url = sim.url
        worker = spawn(settings, "-m", "worker", "--queues", queues)
        try:
            client = await dev_server.client()
            request = request_for(3, "simulator", review="storyboard")
            handle = await start_generation(client, settings, request)
            deadline = time.monotonic() + 90
            while (
                await handle.query("get_state", result_type=GenerationState)
            ).status is not GenerationStatus.awaiting_approval:
                assert time.monotonic() < deadline, "the run never waited for approval"
                await asyncio.sleep(0.3)
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
            dev_server.kill()
            outcome("approval restart", "worker and dev server SIGKILLed while awaiting approval")
            dev_server.start()
            worker = spawn(settings, "-m", "worker", "--queues", queues)
            client = await dev_server.client()
            handle = client.get_workflow_handle(handle.id, result_type=GenerationState)
            waiting = await handle.query("get_state", result_type=GenerationState)
            assert waiting.status is GenerationStatus.awaiting_approval
            assert (await sim.log())["counts"]["creates"] == 0, "paid for before approval"
            await handle.signal("approve")
            state = await asyncio.wait_for(handle.result(), timeout=DEADLINE)
        finally:
            stop_process(worker, 60)
        log = await sim.log()
    assert state.status is GenerationStatus.completed
    assert log["counts"]["creates"] == 3
    outcome("approval restart", f"approved after the restarts: {state.status.value}, 3 predictions")
