"""Provider-wide limits hold across generations: per-worker concurrency, server-side rate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client

from storyreel.contracts import GenerationStatus
from storyreel.settings import ProviderLimit, Settings
from tests.fakes import SleepyProvider
from tests.workflows.conftest import request_for, running_worker, start


async def test_concurrency_limit_holds_across_generations(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    settings.provider_limits["sleepy"] = ProviderLimit(max_concurrent=2)
    provider = SleepyProvider(prepared_clip, 0.8)
    async with running_worker(client, settings, {"sleepy": provider}):
        handles = [await start(client, settings, request_for(3, "sleepy")) for _ in range(2)]
        states = await asyncio.gather(*(handle.result() for handle in handles))
    assert all(state.status is GenerationStatus.completed for state in states)
    assert provider.log.max_running == 2, "two generations together exceeded the provider limit"
    assert len(provider.log.spans) == 6


async def test_server_enforced_starts_per_second(
    client: Client, settings: Settings, prepared_clip: Path
) -> None:
    settings.provider_limits["sleepy"] = ProviderLimit(activities_per_second=2, max_concurrent=20)
    provider = SleepyProvider(prepared_clip, 0.05)
    async with running_worker(client, settings, {"sleepy": provider}):
        state = await (await start(client, settings, request_for(8, "sleepy"))).result()
    assert state.status is GenerationStatus.completed
    starts = sorted(start for _, start, _ in provider.log.spans)
    # 8 starts at 2/s cannot all happen within 2 s, whatever burst the server allows first.
    assert starts[-1] - starts[0] >= 2.0, f"8 clips started within {starts[-1] - starts[0]:.2f} s"
