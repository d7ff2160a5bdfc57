"""Chaos: the worker and the API die between attempts at a webhook delivery; the event still
arrives, under its one id, once the receiver answers."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from standardwebhooks import Webhook
from temporalio.client import Client

from storyreel.db import open_records
from storyreel.settings import Settings
from storyreel.stack import free_port, stop_process
from tests.chaos.test_restarts import DEADLINE, outcome
from tests.receiver import receiver
from tests.workflows.test_simulator_runs import process_env

QUEUES = "workflows,media,clips:local"


def spawn(env: dict[str, str], *command: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, *command], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


async def _until_up(http: httpx.AsyncClient, path: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        try:
            return await http.get(path)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the API never came up"
            await asyncio.sleep(0.3)


async def test_a_delivery_survives_worker_and_api_restarts_between_attempts(
    client: Client,  # noqa: ARG001 (the session's dev server, which settings points at)
    settings: Settings,
) -> None:
    records = open_records(settings)
    key = records.create_api_key(records.create_user("chaos"))
    records.dispose()
    env = {
        **process_env(settings),
        "STORYREEL_WEBHOOK_ALLOW_PRIVATE": "true",
        "STORYREEL_WEBHOOK_RETRY_INITIAL_SECONDS": "1",
    }
    port = free_port()
    api_command = ("-m", "uvicorn", "api.app:create_app", "--factory",
                   "--host", "127.0.0.1", "--port", str(port))  # fmt: skip
    with receiver(default=500) as hooks:
        worker = spawn(env, "-m", "worker", "--queues", QUEUES)
        api = spawn(env, *api_command)
        headers = {"Authorization": f"Bearer {key}"}
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30
            ) as http:
                secret = (await _until_up(http, "/v1/webhooks/secret")).json()["key"]
                request = {
                    "title": "Harbour",
                    "scenes": [{"description": "The harbour wakes", "duration": 2}],
                    "platform": "youtube",
                    "provider": "local",
                    "webhook": hooks.url,
                }
                answer = await http.post("/v1/generations", json=request)
                assert answer.status_code == 202, answer.text
                gid = answer.json()["id"]
                await hooks.wait_for(1, timeout=DEADLINE)
                # Between attempts: the failed one recorded, the next one not yet answered.
                deadline = time.monotonic() + DEADLINE
                while not (await http.get(f"/v1/generations/{gid}/deliveries")).json()["items"]:
                    assert time.monotonic() < deadline, "the failed attempt was never recorded"
                    await asyncio.sleep(0.1)
                kill(worker)
                kill(api)
                outcome("webhook restart", "worker and API SIGKILLed after a failed attempt")
                hooks.default = 200
                worker = spawn(env, "-m", "worker", "--queues", QUEUES)
                api = spawn(env, *api_command)
                deadline = time.monotonic() + DEADLINE
                while not any(hit.answered == 200 for hit in hooks.hits):
                    assert time.monotonic() < deadline, "the delivery never arrived"
                    await asyncio.sleep(0.2)
                listed: dict[str, Any] = {"items": []}
                while not any(item["delivered"] for item in listed["items"]):
                    assert time.monotonic() < deadline, listed
                    listed = (await _until_up(http, f"/v1/generations/{gid}/deliveries")).json()
                    await asyncio.sleep(0.2)
        finally:
            stop_process(api, 60)
            stop_process(worker, 60)
    assert len({hit.headers["webhook-id"] for hit in hooks.hits}) == 1
    delivered = next(hit for hit in hooks.hits if hit.answered == 200)
    assert Webhook(secret).verify(delivered.body, delivered.headers)["data"]["id"] == gid
    attempts = [item["attempt"] for item in listed["items"]]
    assert attempts == sorted(attempts) and attempts[0] == 1 and len(attempts) >= 2
    assert [item["delivered"] for item in listed["items"]].count(True) == 1
    outcome("webhook restart", f"delivered at attempt {attempts[-1]}, one webhook-id")
