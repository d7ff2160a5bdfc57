"""Drafts before finals, over the real API and a worker configured from its environment against
the simulator's fal protocol (schemas enforced): a draft of ``fal-ai/veo3`` is made with its
fast sibling at its lowest resolution without sound and costs what that tier costs, its quote
says what the finals will cost; finalizing two scenes makes predictions for those two only,
on the draft's plan and storyboard, the third keeping the draft's clip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.media import ffmpeg
from storyreel.db import open_records
from storyreel.settings import Settings
from tests.api.conftest import serve_api
from tests.workflows.conftest import running_worker
from tests.workflows.test_model_runs import QUEUES, creates_of, deployed
from tests.workflows.test_simulator_runs import Sim, simulator

MODEL, FAST = "fal-ai/veo3", "fal-ai/veo3/fast"
SCENES: list[dict[str, Any]] = [
    {"description": "A lighthouse at dawn", "duration": 3.5},
    {"description": "Fog over the harbour", "duration": 5.0},
    {"description": "Night falls on the sea", "duration": 2.5},
]
BILLED = 4 + 6 + 4  # veo3 makes 4, 6 or 8 s


async def until(http: httpx.AsyncClient, gid: str, statuses: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = await http.get(f"/v1/generations/{gid}")
        assert answer.status_code == 200, answer.text
        view = answer.json()
        if view["status"] in statuses:
            return view
        await asyncio.sleep(0.25)
    raise AssertionError(f"{gid} never reached {statuses}: {view}")


@pytest.fixture
async def stack(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, Sim, Settings]]:
    async with simulator(latency=0.2, render=False, seed=7) as sim:
        deployed_settings = deployed(settings, sim, monkeypatch)
        async with running_worker(client, deployed_settings, queues=QUEUES):
            server, task, url = await serve_api(deployed_settings, client)
            records = open_records(deployed_settings)
            try:
                key = records.create_api_key(records.create_user("dora"))
                headers = {"Authorization": f"Bearer {key}"}
                async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as http:
                    yield http, sim, deployed_settings
            finally:
                records.dispose()
                server.should_exit = True
                await task


async def test_a_draft_is_cheap_and_its_final_remakes_only_the_scenes_asked(
    stack: tuple[httpx.AsyncClient, Sim, Settings],
) -> None:
    http, sim, settings = stack
    body = {
        "title": "Harbour draft",
        "platform": "youtube",
        "provider": "fal",
        "model": MODEL,
        "quality": "draft",
        "transition": "none",
        "captions": False,
        "scenes": SCENES,
    }
    answer = await http.post("/v1/generations", json=body)
    assert answer.status_code == 202, answer.text
    draft_id = answer.json()["id"]
    draft = await until(http, draft_id, {"completed", "failed", "awaiting_retry"})
    assert draft["status"] == "completed", draft
    assert draft["quality"] == "draft"

    log = await sim.log()
    fast = creates_of(log, FAST)
    assert len(fast) == 3 and creates_of(log, MODEL) == []
    for create in fast:
        assert create["schema"] and create["unknown_inputs"] == [], create
        assert create["inputs"]["resolution"] == "720p"  # the lowest it makes
        assert create["inputs"]["generate_audio"] is False
    # The fast tier's price (catalogue: $0.10/s without sound) for the seconds it bills...
    assert draft["quote"]["model"] == FAST
    assert draft["quote"]["cost"] == pytest.approx(0.10 * BILLED)
    assert draft["cost"] == pytest.approx(0.10 * BILLED)
    # ...and what the finals will cost ($0.40/s with sound).
    assert draft["final_quote"]["model"] == MODEL
    assert draft["final_quote"]["cost"] == pytest.approx(0.40 * BILLED)

    answer = await http.post(f"/v1/generations/{draft_id}/finalize", json={"scenes": [1, 2]})
    assert answer.status_code == 202, answer.text
    final_id = answer.json()["id"]
    assert final_id == f"{draft_id}-final"
    again = await http.post(f"/v1/generations/{draft_id}/finalize", json={"scenes": [1, 2]})
    assert again.status_code == 202 and again.json()["id"] == final_id
    final = await until(http, final_id, {"completed", "failed", "awaiting_retry"})
    assert final["status"] == "completed", final
    assert final["quality"] == "final" and final["draft_of"] == draft_id

    log = await sim.log()
    finals = creates_of(log, MODEL)
    assert len(finals) == 2 and len(creates_of(log, FAST)) == 3
    made = sorted(next(n for n, s in enumerate(SCENES, 1) if s["description"] in c["prompt"])
                  for c in finals)  # fmt: skip
    assert made == [1, 2]
    for create in finals:
        assert create["inputs"].get("resolution") != "720p"  # the model's default, a final
    # The draft's plan and storyboard, as reviewed; scene 3 is the draft's clip, at no cost.
    assert [(s["description"], s["duration"]) for s in final["scenes"]] == [
        (s["description"], s["duration"]) for s in draft["scenes"]
    ]
    clips = {clip["clip_id"]: clip for clip in final["clips"]}
    assert clips[3]["provider"] == "asset" and clips[3]["cost"] == 0.0
    assert final["cost"] == pytest.approx(0.40 * (4 + 6))
    for index in (1, 2, 3):
        theirs = await http.get(f"/v1/generations/{draft_id}/storyboard/{index}")
        ours = await http.get(f"/v1/generations/{final_id}/storyboard/{index}")
        assert ours.status_code == 200 and ours.content == theirs.content
    video = await http.get(f"/v1/generations/{final_id}/video", follow_redirects=True)
    assert video.status_code == 200
    path = settings.data_dir / "final.mp4"
    path.write_bytes(video.content)
    planned = 3.5 + 5.0 + 2.5
    assert ffmpeg.probe(path).duration == pytest.approx(planned, abs=0.1)

    # Only a completed draft is finalized.
    answer = await http.post(f"/v1/generations/{final_id}/finalize")
    assert answer.status_code == 409 and "not a draft" in answer.json()["detail"]
