"""Helpers to run generations on the real dev server with real or test providers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from activities.providers import ClipProvider
from storyreel.contracts import GenerationInput, GenerationState, Platform, SceneIn
from storyreel.generations import start_generation
from storyreel.settings import Settings
from tests.conftest import CLIP_SECONDS
from worker import running_workers

# Histories of every run in this session, replayed by test_replay.py.
HISTORIES: list[WorkflowHistory] = []


def scenes(count: int, seconds: float = CLIP_SECONDS) -> list[SceneIn]:
    return [
        SceneIn(description=f"Scene {index}: a lighthouse keeper counts waves", duration=seconds)
        for index in range(1, count + 1)
    ]


# What a run is finished with when nobody asks: a crossfade and burnt-in captions. Tests about
# the finished video pass it; the others cut between scenes without captions, so the stitch
# copies streams instead of re-encoding the whole video (the costliest step of a test run).
AS_DEPLOYED: dict[str, object] = {
    name: GenerationInput.model_fields[name].default for name in ("transition", "captions")
}


def request_for(count: int, provider: str, **changes: object) -> GenerationInput:
    """A run of ``count`` scenes on ``provider``: cuts, no captions, unless ``changes`` say
    otherwise (``**AS_DEPLOYED`` for the request's own defaults)."""
    fields: dict[str, object] = {
        "title": f"test {uuid.uuid4().hex[:6]}",
        "scenes": scenes(count),
        "platform": Platform.youtube,
        "provider": provider,
        "consistency_context": "Watercolour, soft light",
        "transition": None,
        "captions": False,
    }
    fields.update(changes)
    return GenerationInput.model_validate(fields)


@asynccontextmanager
async def running_worker(
    client: Client,
    settings: Settings,
    clip_providers: dict[str, ClipProvider] | None = None,
    queues: Sequence[str] | None = None,
) -> AsyncIterator[None]:
    providers = clip_providers or {}
    queues = queues or ["workflows", "media", *(f"clips:{name}" for name in providers or ["local"])]
    with ThreadPoolExecutor(max_workers=settings.executor_size()) as executor:
        async with running_workers(
            client, settings, queues, executor, clip_providers=clip_providers
        ):
            yield


async def start(
    client: Client, settings: Settings, request: GenerationInput
) -> WorkflowHandle[object, GenerationState]:
    return await start_generation(client, settings, request, workflow_id=f"t-{uuid.uuid4().hex}")


async def wait_for_state(
    handle: WorkflowHandle[object, GenerationState],
    predicate: Callable[[GenerationState], bool],
    timeout: float = 120.0,
) -> GenerationState:
    """Poll the query until ``predicate`` holds (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    state: GenerationState = await handle.query("get_state", result_type=GenerationState)
    while not predicate(state):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s; last state: {state}")
        await asyncio.sleep(0.2)
        state = await handle.query("get_state", result_type=GenerationState)
    return state


async def keep_history(handle: WorkflowHandle[object, GenerationState]) -> None:
    HISTORIES.append(await handle.fetch_history())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Replay runs last, over the histories every other workflow test recorded."""
    items.sort(key=lambda item: item.nodeid.startswith("tests/workflows/test_replay.py"))
