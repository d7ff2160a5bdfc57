"""No secret ever reaches workflow history, search attributes, memo or logs.

A generation runs through the API (API key), the Replicate adapter (provider token) and S3
storage (presigned URLs); then its recorded history and every captured log line are scanned.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

import httpx
import pytest
from google.protobuf.json_format import MessageToJson
from pydantic import SecretStr
from temporalio.client import Client

from storyreel.db import open_records
from storyreel.settings import Settings
from tests.api.conftest import serve_api
from tests.s3_fixtures import ACCESS_KEY, REGION, SECRET_KEY, S3Endpoint
from tests.workflows.test_simulator_runs import simulator
from worker import running_workers

PROVIDER_TOKEN = "r8_provider-token-that-must-stay-secret"


async def test_no_secret_in_history_or_logs(
    client: Client,
    settings: Settings,
    moto_server: S3Endpoint,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Services log at INFO; our own code and the SDK are captured down to DEBUG. (botocore's
    # own DEBUG output prints request signatures: never enable it in production.)
    caplog.set_level(logging.INFO)
    for name in ("storyreel", "activities", "api", "temporalio", "worker"):
        caplog.set_level(logging.DEBUG, logger=name)
    bucket = moto_server.new_bucket()
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
        "REPLICATE_API_TOKEN": PROVIDER_TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    settings.storage_url = f"s3://{bucket}/media"
    settings.clip_providers = ["local", "replicate"]
    settings.replicate_poll_interval = 0.2

    async with simulator(latency=0.5, render=False) as sim, AsyncExitStack() as stack:
        monkeypatch.setenv("REPLICATE_BASE_URL", sim.url)
        # The worker's provider keys are settings (the environment's, read when they are made).
        settings.replicate_api_token = SecretStr(PROVIDER_TOKEN)
        settings.replicate_base_url = sim.url
        executor = stack.enter_context(ThreadPoolExecutor(settings.executor_size()))
        records = open_records(settings)
        stack.callback(records.dispose)
        queues = ["workflows", "media", "clips:replicate"]
        await stack.enter_async_context(
            running_workers(client, settings, queues, executor, records=records)
        )
        server, task, url = await serve_api(settings, client)
        try:
            key = records.create_api_key(records.create_user("erin"))
            headers = {"Authorization": f"Bearer {key}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
                body = {
                    "title": "Secrets",
                    "scenes": [{"description": "A quiet pier", "duration": 2}] * 2,
                    "platform": "youtube",
                    "provider": "replicate",
                    "model": "storyreel/sim-video",
                }
                gid = (await http.post("/v1/generations", json=body)).json()["id"]
                handle = client.get_workflow_handle(gid)
                await handle.result()
                view = (await http.get(f"/v1/generations/{gid}")).json()
                assert view["status"] == "completed"
                video = await http.get(f"/v1/generations/{gid}/video")
                assert video.status_code == 307
                presigned = video.headers["location"]
                assert "X-Amz-Signature=" in presigned
                signature = presigned.split("X-Amz-Signature=")[1].split("&")[0]
        finally:
            server.should_exit = True
            await task
        history = await handle.fetch_history()
        description = await handle.describe()

    recorded = "\n".join(MessageToJson(event) for event in history.events)
    decoded = []
    for event in history.events:
        for field in ("workflow_execution_started_event_attributes",
                      "activity_task_scheduled_event_attributes",
                      "activity_task_completed_event_attributes"):  # fmt: skip
            if event.HasField(field):
                attributes = getattr(event, field)
                payloads = attributes.input if hasattr(attributes, "input") else attributes.result
                decoded += await client.data_converter.decode(payloads.payloads)
    everything = "\n".join(
        [
            recorded,
            json.dumps(decoded, default=str),
            str(description.typed_search_attributes),
            json.dumps(await description.memo(), default=str),
            *(record.getMessage() for record in caplog.records),
            *(str(record.__dict__) for record in caplog.records),
        ]
    )
    assert len(decoded) > 5, "the scan saw no payloads"
    for secret in (key, PROVIDER_TOKEN, SECRET_KEY, signature):
        assert secret not in everything
    assert "X-Amz-Signature" not in everything
