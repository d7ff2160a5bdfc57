"""``storyreel status`` lists a run's webhook deliveries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from activities.providers import ClipProvider
from storyreel import cli
from storyreel.cli.core import console
from storyreel.settings import Settings, get_settings
from tests.api.conftest import live_stack
from tests.api.test_generations import body, poll_until
from tests.api.test_notify import allow_local_receivers, deliveries_until
from tests.fakes import SleepyProvider
from tests.receiver import receiver


async def test_status_prints_every_attempt_at_the_runs_events(
    client: Client,
    settings: Settings,
    prepared_clip: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allow_local_receivers(settings)
    clip_providers: dict[str, ClipProvider] = {"sleepy": SleepyProvider(prepared_clip, 0.5)}
    with receiver(500) as hooks:
        async with live_stack(client, settings, clip_providers, "alice") as api:
            request = body("sleepy", 1, webhook=hooks.url)
            gid = (await api.http.post("/v1/generations", json=request)).json()["id"]
            await poll_until(api, gid, {"completed"}, [])
            listed = await deliveries_until(api, gid, 2)
            monkeypatch.setenv("STORYREEL_API_URL", api.url)
            monkeypatch.setenv("STORYREEL_API_KEY", api.key)
            get_settings.cache_clear()
            # A wide terminal: the console's width is fixed when it is made if COLUMNS was set
            # then (as pytest-xdist's workers have it), so an env given to the runner is not
            # enough. (Narrow ones keep ids and event types whole: see print_deliveries.)
            monkeypatch.setattr(console, "width", 200)
            try:
                result = await asyncio.to_thread(CliRunner().invoke, cli.app, ["status", gid])
            finally:
                get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert f"Webhook: {hooks.url}" in result.output
    for item in listed["items"]:
        assert item["delivery_id"] in result.output
    assert "HTTP 500" in result.output and result.output.count("generation.completed") == 2
