"""A run with a webhook: its events are child workflows that outlive it, and its history (and
theirs) replays; a run without one issues the commands it always did."""

from __future__ import annotations

import json
import uuid

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from storyreel.contracts import GenerationStatus
from storyreel.db import open_records
from storyreel.generations import start_generation
from storyreel.notify import DeliveryResult, event_id
from storyreel.settings import Settings
from tests.receiver import receiver
from tests.workflows.conftest import HISTORIES, request_for, running_worker
from workflows.generation import VideoGenerationWorkflow
from workflows.notify import NotifyWorkflow
from workflows.patches import NOTIFY_WEBHOOK


async def test_a_run_with_a_webhook_starts_its_events_and_replays(
    client: Client, settings: Settings
) -> None:
    settings.webhook_allow_private = True
    settings.webhook_retry_initial_seconds = 0.2
    records = open_records(settings)
    user = records.create_user("hooked")
    records.dispose()
    assert user.id is not None
    events = ["awaiting_approval", "completed"]
    with receiver(503) as hooks:
        request = request_for(1, "local", webhook=hooks.url, webhook_events_filter=events)
        async with running_worker(client, settings):
            handle = await start_generation(
                client, settings, request, workflow_id=f"t-{uuid.uuid4().hex}", user_id=user.id
            )
            state = await handle.result()
            notify = client.get_workflow_handle(event_id(handle.id, 1), result_type=DeliveryResult)
            delivered = await notify.result()
            histories = [await handle.fetch_history(), await notify.fetch_history()]
    assert state.status is GenerationStatus.completed
    assert (delivered.attempt, delivered.status_code) == (2, 200)
    assert [json.loads(hit.body)["type"] for hit in hooks.hits] == ["generation.completed"] * 2
    markers = [
        event.marker_recorded_event_attributes.SerializeToString()
        for event in histories[0].events
        if event.HasField("marker_recorded_event_attributes")
    ]
    assert any(NOTIFY_WEBHOOK.encode() in marker for marker in markers), "no patch marker"
    replayer = Replayer(
        workflows=[VideoGenerationWorkflow, NotifyWorkflow],
        data_converter=pydantic_data_converter,
    )
    for history in histories:
        await replayer.replay_workflow(history)
    HISTORIES.append(histories[0])
