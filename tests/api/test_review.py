"""The storyboard review gate over HTTP: nothing is paid for until a person approves; an edited
scene redraws only its own image; approval starts exactly one prediction per scene."""

from __future__ import annotations

import asyncio
import time

from temporalio.client import Client

from tests.api.conftest import LiveApi
from tests.api.test_finish import cli
from tests.api.test_generations import body, poll_until
from tests.fakes import SleepyProvider


async def storyboard_draws(client: Client, generation_id: str) -> list[int]:
    """The scene index of every storyboard activity the run scheduled, in order."""
    history = await client.get_workflow_handle(generation_id).fetch_history()
    draws = []
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == "render_storyboard":
            payload = await client.data_converter.decode(scheduled.input.payloads)
            draws.append(payload[0]["scene"]["index"])
    return draws


async def test_a_reviewed_run_waits_unpaid_takes_edits_and_starts_on_approval(
    live_api: LiveApi, client: Client, clip_providers: dict[str, object]
) -> None:
    sleepy = clip_providers["sleepy"]
    assert isinstance(sleepy, SleepyProvider)
    answer = await live_api.http.post(
        "/v1/generations", json=body("sleepy", 3, review="storyboard")
    )
    assert answer.status_code == 202, answer.text
    gid = answer.json()["id"]
    view = await poll_until(live_api, gid, {"awaiting_approval"}, [])
    assert sleepy.log.submits == [], "a clip was paid for before approval"
    assert [scene["index"] for scene in view["scenes"]] == [1, 2, 3]
    assert all(scene["storyboard_url"] for scene in view["scenes"])
    before = view["scenes"][1]["storyboard_url"]
    image = await live_api.http.get(before)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"

    # Bad edits are refused before anything is signalled.
    for bad in ({}, {"duration": 20}, {"colour": "red"}):
        refused = await live_api.http.post(f"/v1/generations/{gid}/scenes/2", json=bad)
        assert refused.status_code == 422, bad
    missing = await live_api.http.post(f"/v1/generations/{gid}/scenes/9", json={"caption": "x"})
    assert missing.status_code == 404

    edited = "A red kite over the dunes"
    changed = await live_api.http.post(
        f"/v1/generations/{gid}/scenes/2", json={"description": edited, "duration": 3}
    )
    assert changed.status_code == 202, changed.text
    deadline = time.monotonic() + 60
    while True:
        view = (await live_api.http.get(f"/v1/generations/{gid}")).json()
        if view["scenes"][1]["description"] == edited:
            break
        assert time.monotonic() < deadline, "the edit never reached the state"
        await asyncio.sleep(0.1)
    assert view["status"] == "awaiting_approval"
    assert view["scenes"][1]["duration"] == 3
    assert view["scenes"][1]["storyboard_url"] != before, "the edited image kept its URL"
    assert await storyboard_draws(client, gid) == [1, 2, 3, 2], "not only scene 2 was redrawn"
    assert sleepy.log.submits == []

    other = live_api.new_user("mallory")
    try:
        assert (await other.post(f"/v1/generations/{gid}/approve")).status_code == 404
        assert (
            await other.post(f"/v1/generations/{gid}/scenes/1", json={"caption": "mine"})
        ).status_code == 404
    finally:
        await other.aclose()

    # A reviewer at the terminal sees the scenes to decide on, the edit included.
    code, output = await cli(live_api, "status", gid)
    assert code == 0, output
    assert "awaiting_approval" in output and "what the camera sees" in output, output
    assert "Quote: about $" in output and "billed" in output, output
    assert "A red kite over the dunes" in " ".join(output.split()), output
    assert f"storyreel approve {gid}" in " ".join(output.split()), output

    code, output = await cli(live_api, "approve", gid)
    assert code == 0, output
    final = await poll_until(live_api, gid, {"completed", "failed"}, [])
    assert final["status"] == "completed"
    assert sorted(clip for clip, _ in sleepy.log.submits) == [1, 2, 3], "one prediction per scene"
    assert final["clips"][1]["prompt"].endswith(f"SCENE: {edited}")
    again = await live_api.http.post(f"/v1/generations/{gid}/approve")
    assert again.status_code == 409
    late = await live_api.http.post(f"/v1/generations/{gid}/scenes/1", json={"caption": "late"})
    assert late.status_code == 409
