"""A model outside the catalogue is quoted at the seconds its provider will bill before the
first clip is paid for, and the ledger books each clip's billed seconds.

``luma/ray-flash-2-540p`` is not in storyreel's catalogue; the Replicate-protocol simulator
serves its published schema (it makes 5 or 9 s clips) and holds creates to it. The API quotes
such a model at its scenes' lengths (4 + 6 s); the run reads the model on its clip queue before
it plans and is planned toward, quoted, budgeted and limited at 5 + 9 s.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from storyreel.contracts import GenerationState, GenerationStatus, Platform, SceneIn
from storyreel.db import open_records
from storyreel.generations import start_generation
from storyreel.settings import Settings
from tests.db.fixtures import billed_seconds
from tests.workflows.conftest import keep_history, request_for, start, wait_for_state
from tests.workflows.test_simulator_runs import on, simulator, worker_for

LUMA = "luma/ray-flash-2-540p"


async def scheduled(client: Client, handle: WorkflowHandle[Any, Any]) -> list[tuple[str, Any]]:
    """Every activity the run scheduled, in order, with its input."""
    activities = []
    for event in (await handle.fetch_history()).events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attributes = event.activity_task_scheduled_event_attributes
            payload = await client.data_converter.decode(attributes.input.payloads)
            activities.append((attributes.activity_type.name, payload[0]))
    return activities


def luma_scenes(*seconds: float) -> list[SceneIn]:
    return [
        SceneIn(description=f"Scene {index}: the harbour at dusk", duration=length)
        for index, length in enumerate(seconds, start=1)
    ]


async def test_an_unlisted_model_is_quoted_as_billed_before_any_clip_and_booked_so(
    client: Client, settings: Settings
) -> None:
    records = open_records(settings)
    try:
        user = records.create_user("lena")
        assert user.id is not None
        # Review first: the run holds, storyboard drawn and nothing paid for, showing its quote.
        request = request_for(
            2,
            "simulator",
            model=LUMA,
            scenes=luma_scenes(4, 6),
            review="storyboard",
            captions=False,
            transition=None,
        )
        async with simulator(latency=0.5, seed=2) as sim, worker_for(client, on(settings, sim)):
            handle = await start_generation(
                client, settings, request, workflow_id=f"t-{uuid.uuid4().hex}", user_id=user.id
            )
            held = await wait_for_state(
                handle, lambda s: s.status is GenerationStatus.awaiting_approval
            )
            unpaid = await sim.log()
            recorded = records.get_generation(handle.id, user.id)
            await handle.signal("approve")
            final = await handle.result()
            await keep_history(handle)
            log = await sim.log()
        ledger = billed_seconds(records, handle.id)
    finally:
        records.dispose()

    assert unpaid["counts"]["creates"] == 0
    assert held.quote is not None
    assert [scene.billed_seconds for scene in held.quote.scenes] == [5.0, 9.0]
    assert (held.quote.lengths, held.quote.billed_seconds) == ("5 or 9 s", 14.0)
    assert held.quote.cost == pytest.approx(14 * 0.05)
    # What GET state reads (the record) says the same.
    assert recorded is not None and recorded.quote == held.quote

    assert final.status is GenerationStatus.completed
    asked = sorted(prediction["inputs"]["duration"] for prediction in log["predictions"])
    assert asked == [5, 9]
    # Each clip's charge carries the seconds billed for it: the lengths the model was asked.
    assert ledger == {
        f"{handle.id}/clip-1/round-1": 5.0,
        f"{handle.id}/clip-2/round-1": 9.0,
    }
    assert final.cost == pytest.approx(held.quote.cost)


async def test_a_run_its_billed_seconds_do_not_fit_fails_before_any_clip(
    client: Client, settings: Settings
) -> None:
    """Planned, both fit (10 s at 0.05 is 0.50; 42 s is inside Shorts' 60 s); billed, they do
    not (0.70 over a 0.60 budget; seven 9 s clips, 63 s). The API's message, no clip made."""
    over_budget = request_for(2, "simulator", model=LUMA, scenes=luma_scenes(4, 6), budget=0.6)
    too_long = request_for(
        7,
        "simulator",
        model=LUMA,
        scenes=luma_scenes(*[6] * 7),
        platform=Platform.youtube_shorts,
    )
    ended: list[GenerationState] = []
    activities: list[list[tuple[str, Any]]] = []
    async with simulator(latency=0.5, render=False) as sim, worker_for(client, on(settings, sim)):
        for request in (over_budget, too_long):
            handle = await start(client, settings, request)
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            await keep_history(handle)
            ended.append(await handle.query("get_state", result_type=GenerationState))
            activities.append(await scheduled(client, handle))
        log = await sim.log()

    assert log["counts"]["creates"] == 0
    budget, length = ended
    assert budget.status is length.status is GenerationStatus.failed
    assert budget.storyboard_keys == length.storyboard_keys == []
    assert budget.error == (
        "budget: the clips would cost about 0.70, over the budget of 0.60; the 2 scenes on "
        "simulator/luma/ray-flash-2-540p (it makes 5 or 9 s clips: scene 1, 4 s, is billed as "
        "5 s; scene 2, 6 s, is billed as 9 s) come to 14 s"
    )
    assert length.error is not None
    assert length.error.startswith("too long for youtube_shorts: it allows 60 s, and the 7 scenes")
    assert "scene 1, 6 s, is billed as 9 s" in length.error and "come to 63 s" in length.error
    assert budget.quote is not None and budget.quote.billed_seconds == 14.0
    # The model was read first, on its clip queue; the plan was shaped toward what it makes;
    # no storyboard was drawn and no clip started.
    for run in activities:
        names = [name for name, _ in run]
        assert names == ["describe_model", "plan_generation", "publish_generation"]
        (_, described), (_, planned), _ = run
        assert described == {"provider": "simulator", "model": LUMA}
        assert planned["clip_lengths"] == [5.0, 9.0]
