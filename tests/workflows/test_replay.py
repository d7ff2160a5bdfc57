"""Histories recorded by this session's workflow tests replay without nondeterminism."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from storyreel.contracts import GenerationStatus
from storyreel.settings import Settings
from tests.workflows.conftest import HISTORIES, request_for, running_worker, start
from workflows.generation import VideoGenerationWorkflow


async def test_recorded_histories_replay(client: Client, settings: Settings) -> None:
    # One history recorded here, whatever ran before: the test stands on its own. Histories
    # other workflow tests kept in this session are replayed too.
    async with running_worker(client, settings):
        handle = await start(client, settings, request_for(2, "local"))
        assert (await handle.result()).status is GenerationStatus.completed
        own = await handle.fetch_history()
    replayer = Replayer(workflows=[VideoGenerationWorkflow], data_converter=pydantic_data_converter)
    for history in [own, *HISTORIES]:
        await replayer.replay_workflow(history)
