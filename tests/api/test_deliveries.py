"""The webhook service against the real parts: Replicate-signed deliveries, the dev server's
workflows (started with no worker, so their history shows exactly what was signalled) and the
record database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping

import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from api.deliveries import MAX_BODY_BYTES, Deliveries
from storyreel.contracts import ClipStatus
from storyreel.db import Records
from storyreel.webhooks.base import WebhookRejectedError
from storyreel.webhooks.replicate import ReplicateWebhookVerifier, new_secret, signed_headers
from tests.conftest import temporal_cli

SECRET = new_secret()


def signed(body: bytes) -> dict[str, str]:
    """Replicate's headers for ``body``, signed now by a delivery of its own."""
    headers = signed_headers(SECRET, f"msg_{uuid.uuid4().hex}", body, time.time())
    return {name.lower(): value for name, value in headers.items()}


def delivery(prediction: Mapping[str, object]) -> tuple[dict[str, str], bytes]:
    body = json.dumps(prediction).encode()
    return signed(body), body


def deliveries(client: Client, records: Records) -> Deliveries:
    return Deliveries({"replicate": ReplicateWebhookVerifier(SECRET)}, client, records)


async def idle_run(client: Client) -> str:
    """A running workflow no worker picks up: its history is what was sent to it."""
    run_id = f"gen-{uuid.uuid4().hex[:12]}"
    await client.start_workflow(
        "VideoGenerationWorkflow", id=run_id, task_queue=f"nobody-{uuid.uuid4().hex[:8]}"
    )
    return run_id


async def signals(client: Client, run_id: str) -> list[str]:
    history = await client.get_workflow_handle(run_id).fetch_history()
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def test_an_ended_prediction_signals_its_run_once(client: Client, records: Records) -> None:
    service = deliveries(client, records)
    run_id = await idle_run(client)
    headers, body = delivery({"id": "p1", "status": "succeeded", "output": "https://x/a.mp4"})
    assert await service.receive("replicate", headers, body, run_id, 2) == "accepted"
    assert await service.receive("replicate", headers, body, run_id, 2) == "duplicate"
    assert await signals(client, run_id) == ["prediction_update"]
    await client.get_workflow_handle(run_id).terminate()
    # Once the run has ended, a late delivery has nobody to tell.
    late_headers, late_body = delivery({"id": "p1", "status": "succeeded"})
    assert await service.receive("replicate", late_headers, late_body, run_id, 2) == "ignored"
    # Nor has a delivery for a run that never was.
    stray_headers, stray_body = delivery({"id": "p5", "status": "failed", "error": "boom"})
    missing = f"gen-{uuid.uuid4().hex[:12]}"
    assert await service.receive("replicate", stray_headers, stray_body, missing, 1) == "ignored"


async def test_progress_is_noted_in_the_records_not_signalled(
    client: Client, records: Records
) -> None:
    service = deliveries(client, records)
    run_id = await idle_run(client)
    logs = "  40%|####      | 20/50\n"
    headers, body = delivery({"id": "p7", "status": "processing", "logs": logs})
    assert await service.receive("replicate", headers, body, run_id, 3) == "accepted"
    [row] = records.clip_progress(run_id)
    assert (row.clip_id, row.prediction_id, row.status, row.progress) == (
        3,
        "p7",
        ClipStatus.rendering,
        40.0,
    )
    assert await signals(client, run_id) == []


@pytest.mark.parametrize(
    ("provider", "change", "status"),
    [
        ("fal", None, 404),  # not configured here
        ("replicate", "oversized", 413),
        ("replicate", "forged", 401),
        ("replicate", "bad id", 400),
        ("replicate", "not json", 400),
    ],
)
async def test_refusals_carry_the_status_the_route_answers(
    client: Client, records: Records, provider: str, change: str | None, status: int
) -> None:
    service = deliveries(client, records)
    headers, body = delivery({"id": "p1", "status": "succeeded"})
    generation = "gen-abc"
    if change == "oversized":
        body = b" " * (MAX_BODY_BYTES + 1)
    elif change == "forged":
        body = body.replace(b"succeeded", b"failed")
    elif change == "bad id":
        generation = "../../etc"
    elif change == "not json":
        body = b"{not json"
        headers = signed(body)
    with pytest.raises(WebhookRejectedError) as refused:
        await service.receive(provider, headers, body, generation, 1)
    assert refused.value.status_code == status


async def test_outages_answer_503_and_the_delivery_counts_when_it_comes_again(
    client: Client, records: Records
) -> None:
    # The database loses its table: the provider is told to deliver again, and the retry is
    # acted on (a refused delivery is not remembered as seen).
    service = deliveries(client, records)
    run_id = await idle_run(client)
    headers, body = delivery({"id": "p2", "status": "starting"})
    with records.engine.begin() as connection:
        connection.execute(text("ALTER TABLE clip_progress RENAME TO clip_progress_away"))
    with pytest.raises(WebhookRejectedError) as refused:
        await service.receive("replicate", headers, body, run_id, 1)
    assert refused.value.status_code == 503
    with records.engine.begin() as connection:
        connection.execute(text("ALTER TABLE clip_progress_away RENAME TO clip_progress"))
    assert await service.receive("replicate", headers, body, run_id, 1) == "accepted"
    assert [row.prediction_id for row in records.clip_progress(run_id)] == ["p2"]

    # Temporal goes away under a connected API: 503 too.
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    try:
        own = await Client.connect(
            env.client.service_client.config.target_host,
            data_converter=pydantic_data_converter,
            retry_config=RetryConfig(max_retries=1, max_elapsed_time_millis=2000),
        )
        other_run = await idle_run(own)
    finally:
        await env.shutdown()
    ended, ended_body = delivery({"id": "p3", "status": "succeeded"})
    with pytest.raises(WebhookRejectedError) as refused:
        await deliveries(own, records).receive("replicate", ended, ended_body, other_run, 1)
    assert refused.value.status_code == 503
