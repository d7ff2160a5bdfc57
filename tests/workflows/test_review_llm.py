"""Issue #14's whole path: an LLM plans (its first answer malformed), the run waits for review
without paying for anything, a person edits scene 2 and approves from the ``temporal`` CLI."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from storyreel.contracts import ClipStatus, GenerationState, GenerationStatus
from storyreel.settings import Settings
from tests.api.test_review import storyboard_draws
from tests.conftest import temporal_cli
from tests.fake_llm import plan_json, serve_llm
from tests.fakes import SleepyProvider
from tests.workflows.conftest import keep_history, running_worker, start, wait_for_state
from tests.workflows.test_llm_planner import llm_request, with_llm

EDITED = "CAMERA-2 (edited): a red kite over the dunes, seen from the beach"


def signal(client: Client, handle: WorkflowHandle[object, GenerationState], name: str,
           payload: object | None = None) -> None:  # fmt: skip
    """Send a signal the way an operator would: the ``temporal`` CLI."""
    command = [
        temporal_cli(), "workflow", "signal", "--address",
        client.service_client.config.target_host, "--namespace", "default",
        "--workflow-id", handle.id, "--name", name,
    ]  # fmt: skip
    if payload is not None:
        command += ["--input", json.dumps(payload)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


async def test_llm_plan_review_edit_and_approve(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    provider = SleepyProvider(prepared_clip, 0.3)
    async with serve_llm('{"scenes": [{"descr', plan_json(3)) as llm:
        settings = with_llm(settings, llm.url)
        async with running_worker(client, settings, {"sleepy": provider}):
            request = llm_request(provider="sleepy", review="storyboard", narration=False)
            handle = await start(client, settings, request)
            state = await wait_for_state(
                handle, lambda s: s.status is GenerationStatus.awaiting_approval
            )
            assert len(llm.requests) == 2, "the malformed answer was not asked again"
            assert provider.log.submits == [], "a prediction was made before approval"
            assert [scene.description.split(":")[0] for scene in state.scenes] == [
                "CAMERA-1", "CAMERA-2", "CAMERA-3",
            ]  # fmt: skip

            await asyncio.to_thread(
                signal, client, handle, "edit_scene", {"index": 2, "description": EDITED}
            )
            await wait_for_state(handle, lambda s: s.scenes[1].description == EDITED)
            assert await storyboard_draws(client, handle.id) == [1, 2, 3, 2]
            assert provider.log.submits == []

            await asyncio.to_thread(signal, client, handle, "approve")
            final = await asyncio.wait_for(handle.result(), 120)
            await keep_history(handle)

    assert final.status is GenerationStatus.completed
    assert [clip.status for clip in final.clips] == [ClipStatus.complete] * 3
    assert sorted(clip for clip, _ in provider.log.submits) == [1, 2, 3]
    prompts = [clip.prompt for clip in final.clips]
    assert prompts[1] == f"Ink wash, grey dawn light\n\nSCENE: {EDITED}"
    assert prompts[0].startswith("Ink wash, grey dawn light\n\nSCENE: CAMERA-1: ")
    assert prompts[2].startswith("Ink wash, grey dawn light\n\nSCENE: CAMERA-3: ")
