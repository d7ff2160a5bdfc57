"""Helpers to run generations on the real dev server with real or test providers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowHistory

from activities.providers import ClipProvider, LocalClipProvider
from activities.providers.base import ClipJob
from storyreel.contracts import PLATFORMS, GenerationInput, GenerationState, Platform, SceneIn
from storyreel.generations import start_generation
from storyreel.settings import Settings
from worker import build_workers

CLIP_SECONDS = 2.0
# Histories of every run in this session, replayed by test_replay.py.
HISTORIES: list[WorkflowHistory] = []


@pytest.fixture(scope="session")
def prepared_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 2 s youtube-sized clip, rendered once, that test providers hand out."""
    workdir = tmp_path_factory.mktemp("prepared")
    job = ClipJob(
        generation_id="prepared",
        clip_id=1,
        prompt="prepared",
        text="prepared clip",
        duration=CLIP_SECONDS,
        platform=PLATFORMS[Platform.youtube],
        model="local",
        seed=1,
        image=None,
        workdir=workdir,
    )
    provider = LocalClipProvider()
    return provider.wait(provider.submit(job), job, lambda status, percent: None)


def scenes(count: int, seconds: float = CLIP_SECONDS) -> list[SceneIn]:
    return [
        SceneIn(description=f"Scene {index}: a lighthouse keeper counts waves", duration=seconds)
        for index in range(1, count + 1)
    ]


def request_for(count: int, provider: str, **changes: object) -> GenerationInput:
    fields: dict[str, object] = {
        "title": f"test {uuid.uuid4().hex[:6]}",
        "scenes": scenes(count),
        "platform": Platform.youtube,
        "provider": provider,
        "consistency_context": "Watercolour, soft light",
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
        workers = build_workers(client, settings, queues, executor, clip_providers=clip_providers)
        async with AsyncExitStack() as stack:
            for worker in workers:
                await stack.enter_async_context(worker)
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
