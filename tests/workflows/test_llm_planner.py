"""Planner 'llm' end to end: the real dev server and worker, a local chat-completions server."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError

from activities.llm_planner import PROMPT_VERSION
from storyreel.contracts import ClipStatus, GenerationInput, GenerationState, GenerationStatus
from storyreel.settings import Settings
from tests.fake_llm import plan_json, serve_llm
from tests.workflows.conftest import keep_history, running_worker, start

KEY = "sk-planner-key-that-must-never-reach-history"
SCRIPT = "A keeper climbs the lighthouse at dawn. She lights the great lamp."


def history_text(history: dict[str, Any]) -> str:
    """The history's JSON with every payload's data decoded (payloads are base64 in it)."""
    decoded: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "metadata" in node and isinstance(node.get("data"), str):
                decoded.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(history)
    return json.dumps(history) + "\n" + "\n".join(decoded)


def llm_request(**changes: object) -> GenerationInput:
    fields: dict[str, object] = {
        "title": "llm planned",
        "script": SCRIPT,
        "planner": "llm",
        "platform": "youtube",
        "narration": True,
        "transition": "none",
    }
    fields.update(changes)
    return GenerationInput.model_validate(fields)


def with_llm(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={"llm_base_url": url, "llm_model": "test-model", "llm_api_key": SecretStr(KEY)}
    )


async def test_llm_plan_retried_after_malformed_json_drives_every_clip(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve_llm('{"consistency_context": "oops", "scenes": [', plan_json(2)) as llm:
        settings = with_llm(settings, llm.url)
        async with running_worker(client, settings):
            handle = await start(client, settings, llm_request())
            state = await handle.result()
            await keep_history(handle)
            history = history_text((await handle.fetch_history()).to_json_dict())

    assert state.status is GenerationStatus.completed, state.error
    assert len(llm.requests) == 2  # the malformed answer was asked again
    assert [clip.status for clip in state.clips] == [ClipStatus.complete] * 2
    for number, clip in enumerate(state.clips, start=1):
        # The planner's camera description, under the planner's context (the request had none).
        assert clip.prompt == (
            "Ink wash, grey dawn light\n\nSCENE: "
            f"CAMERA-{number}: a lighthouse keeper in a yellow coat climbs spiral iron stairs, "
            "seen from below"
        )
    # Narration speaks the planned narration, not the camera description.
    assert "She climbs the stairs, step 2." in history
    assert PROMPT_VERSION in history
    # The key stays in the worker: not in history, not in any log line.
    assert "step 2" in history and KEY not in history
    assert KEY not in caplog.text
    assert llm.authorizations == [f"Bearer {KEY}"] * 2


async def test_the_request_context_wins_over_the_planned_one(
    client: Client, settings: Settings
) -> None:
    async with serve_llm(plan_json(2)) as llm:
        settings = with_llm(settings, llm.url)
        async with running_worker(client, settings):
            handle = await start(
                client, settings, llm_request(consistency_context="Pencil sketch", narration=False)
            )
            state = await handle.result()
            await keep_history(handle)
    assert state.status is GenerationStatus.completed
    assert all(clip.prompt.startswith("Pencil sketch\n\nSCENE: CAMERA-") for clip in state.clips)
    assert "Pencil sketch" in llm.requests[0]["messages"][0]["content"]


async def test_an_answer_that_never_fits_the_schema_fails_the_plan_clearly(
    client: Client, settings: Settings
) -> None:
    wrong = json.dumps({"scenes": [{"prompt": "a lighthouse", "seconds": 3}]})
    async with serve_llm(wrong) as llm:
        settings = with_llm(settings, llm.url)
        async with running_worker(client, settings):
            handle = await start(client, settings, llm_request(user_id=None))
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            state: GenerationState = await handle.query("get_state", result_type=GenerationState)
            await keep_history(handle)
    assert len(llm.requests) == 3  # LLM_PLAN_RETRY's attempts, then the run fails
    assert state.status is GenerationStatus.failed
    assert state.error is not None
    assert "does not fit the plan schema" in state.error
    assert "consistency_context: Field required" in state.error
    assert state.clips == []
