"""Generations on fal's queue protocol (the simulator speaks it) with webhooks on, and a
fallback chain from fal to Replicate."""

from __future__ import annotations

from pydantic import SecretStr
from temporalio.client import Client

from activities.providers import ClipProvider
from activities.providers.fal import FalClipProvider
from activities.providers.fal_api import FalClient
from activities.providers.replicate import ReplicateClipProvider
from activities.providers.replicate_api import ReplicateClient
from storyreel.contracts import ClipStatus, GenerationStatus, ProviderChoice, SceneIn
from storyreel.settings import Settings
from tests.workflows.conftest import request_for, running_worker, start
from tests.workflows.test_simulator_runs import simulator
from tests.workflows.test_webhooks import api_for, finished

KLING = "fal-ai/kling-video/v2/master/text-to-video"
AUTH = {"Authorization": "Bearer r8-test-token"}


async def test_a_fal_run_with_a_flaky_request_and_a_refusal_that_falls_back_to_replicate(
    client: Client, settings: Settings
) -> None:
    async with simulator(latency=1.0, render=False, seed=11) as sim:
        fal = FalClient(
            f"{sim.url}/fal",
            "fal-test-key",
            poll_interval=0.25,
            schema_url=f"{sim.url}/fal/openapi/queue/openapi.json",
        )
        replicate = ReplicateClient(sim.url, "r8-test-token", poll_interval=0.25)
        providers: dict[str, ClipProvider] = {
            "fal": FalClipProvider(fal),
            "replicate": ReplicateClipProvider(replicate),
        }
        settings.fal_queue_url = f"{sim.url}/fal"
        settings.fal_jwks_url = f"{sim.url}/fal/.well-known/jwks.json"
        settings.webhook_fallback_poll_seconds = 30
        secret = (await sim.http.get("/v1/webhooks/default/secret", headers=AUTH)).json()["key"]
        settings.replicate_webhook_signing_secret = SecretStr(secret)
        scenes = [
            SceneIn(description="Gulls over the harbour", duration=2),
            SceneIn(description="[fail-once] The ferry leaves", duration=2),
            SceneIn(description="[refuse:fal] Night falls on the quay", duration=2),
        ]
        request = request_for(
            3,
            "fal",
            model=KLING,
            scenes=scenes,
            fallback=[ProviderChoice(provider="replicate", model="kwaivgi/kling-v2.1")],
        )
        try:
            async with running_worker(client, settings, providers), api_for(client, settings):
                state = await finished(await start(client, settings, request))
                log = await sim.log()
        finally:
            await fal.aclose()
            await replicate.aclose()

    assert state.status is GenerationStatus.completed
    assert [clip.status for clip in state.clips] == [ClipStatus.complete] * 3
    assert [clip.provider for clip in state.clips] == ["fal", "fal", "replicate"]
    assert state.clips[0].model == KLING
    refused = state.clips[2]
    assert [(t.provider, t.status) for t in refused.tries] == [
        ("fal", ClipStatus.failed),
        ("replicate", ClipStatus.complete),
    ]
    assert refused.tries[1].cost > 0 and refused.tries[0].cost == 0
    by_model: dict[str, int] = {}
    for prediction in log["predictions"]:
        by_model[prediction["model"]] = by_model.get(prediction["model"], 0) + 1
    # Three fal requests, one more for the flaky one, and one Replicate prediction.
    assert by_model == {KLING: 4, "kwaivgi/kling-v2.1": 1}, by_model
    # The fal requests were called back (signed, verified): none was polled every 0.25 s
    # through its 1 s to the end. The one of clip 1 was read once (status) and fetched once.
    assert log["counts"]["webhooks_sent"] >= 4 and log["counts"]["webhooks_failed"] == 0
    first = next(p for p in log["predictions"] if p["prompt"].endswith("Gulls over the harbour"))
    assert first["gets"] <= 2, first
