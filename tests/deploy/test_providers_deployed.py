"""Every remote provider as deployed: ``python -m worker`` started from the environment alone
(no ``--queues``, nothing injected), one per provider, its provider's variables pointing at the
simulator's copy of that provider's documented protocol, which holds real models to their
published input schemas. A generation per provider goes in through the API and completes; each
create carried the storyboard in the model's own first-frame field and a length the model
makes; the finished video lasts what was planned (clips made at 5/6/8 s are trimmed to their
4 s scene).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from activities.media.export import details
from storyreel.catalogue import lookup
from storyreel.providers import PROVIDERS
from storyreel.settings import Settings
from tests.deploy.test_topology import api_for, processes, spawn
from tests.workflows.test_simulator_runs import process_env, simulator

# (provider, a catalogued model, the variable holding its key)
CASES = [
    ("replicate", "kwaivgi/kling-v2.1", "REPLICATE_API_TOKEN"),
    ("fal", "fal-ai/kling-video/v2.1/master/image-to-video", "FAL_KEY"),
    ("runware", "klingai:5@3", "RUNWARE_API_KEY"),
    ("veo", "veo-3.0-fast-generate-001", "GEMINI_API_KEY"),
]
# Lengths no model makes exactly: each clip is asked at a length that covers it, then cut.
SCENES = [4.0, 3.3, 6.5]
FPS = 30


def worker_env(settings: Settings, provider: str, key: str, sim: str) -> dict[str, str]:
    spec = PROVIDERS[provider]
    assert spec.simulator_env
    env = process_env(settings)
    # This worker knows one remote provider: its key and where its API is. No simulator.
    env.update(STORYREEL_SIMULATOR_URL="", **spec.simulated(sim))
    env[key] = f"{provider}-test-key"
    return env


async def finished(http: httpx.AsyncClient, generation: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = (await http.get(f"/v1/generations/{generation}")).json()
        if state["status"] in ("completed", "failed", "cancelled", "awaiting_retry"):
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.5)


def body_for(provider: str, model: str) -> dict[str, Any]:
    return {
        "title": f"{provider} as deployed",
        "scenes": [
            # Distinct prompts per provider: the simulator's log is read by model.
            {"description": f"scene {n}: the lighthouse at dusk ({provider})", "duration": seconds}
            for n, seconds in enumerate(SCENES, start=1)
        ],
        "platform": "youtube",
        "provider": provider,
        "model": model,
        "use_cache": False,
        # Cuts, no captions: the stitch copies the trimmed clips as they are.
        "transition": "none",
        "captions": False,
    }


async def test_deployed_workers_complete_runs_on_real_models_schemas(
    client: Client, settings: Settings
) -> None:
    """One worker per remote provider, each knowing only its own (as a deployment scales them
    by queue), beside one simulator and one API; a run per provider, all at once."""
    settings.clip_providers = list(PROVIDERS)
    # Tiny outputs of the asked length: the schemas and the cuts are the point, not the pixels
    # (tests/workflows/test_model_runs.py looks at rendered ones).
    async with simulator(latency=0.5, seed=3, render=False) as sim:
        settings.simulator_url = None
        with processes() as started:
            workers = {
                provider: spawn(
                    started, provider, ["worker"], worker_env(settings, provider, key, sim.url)
                )
                for provider, _, key in CASES
            }
            async with api_for(client, settings) as http:
                generations = {}
                for provider, model, _ in CASES:
                    answer = await http.post("/v1/generations", json=body_for(provider, model))
                    assert answer.status_code == 202, (provider, answer.text)
                    generations[provider] = answer.json()["id"]
                states = dict(
                    zip(
                        generations,
                        await asyncio.gather(
                            *(finished(http, g, timeout=240) for g in generations.values())
                        ),
                        strict=True,
                    )
                )
                for provider, worker in workers.items():
                    assert worker.process.poll() is None, f"the {provider} worker stopped"
                videos = {
                    provider: await http.get(f"/v1/generations/{generation}/video")
                    for provider, generation in generations.items()
                }
                log = (await sim.http.get("/_sim/log")).json()

    for provider, model, _ in CASES:
        check_run(provider, model, states[provider], videos[provider], log, settings)


def check_run(
    provider: str,
    model: str,
    state: dict[str, Any],
    video: httpx.Response,
    log: dict[str, Any],
    settings: Settings,
) -> None:
    spec = lookup(provider, model)
    assert spec is not None and spec.first_frame_field
    assert state["status"] == "completed", state
    assert [clip["provider"] for clip in state["clips"]] == [provider] * len(SCENES)
    creates = [p for p in log["predictions"] if p["model"].removeprefix("models/") == model]
    assert len(creates) == len(SCENES), (provider, log["predictions"])
    lengths = spec.durations.lengths()
    for create in creates:
        # The storyboard went where this model takes its first frame; nothing was dropped.
        assert create["unknown_inputs"] == [], create
        assert create["seconds"] in lengths, create
    assert sorted(c["seconds"] for c in creates) == sorted(
        spec.durations.covering(s) for s in SCENES
    ), provider
    # The quote billed those lengths.
    assert state["quote"]["billed_seconds"] == pytest.approx(
        sum(spec.durations.covering(s) for s in SCENES)
    ), provider
    # Trimmed to the plan: the finished video lasts the scenes.
    assert video.status_code == 200, provider
    path = settings.data_dir / f"probe-{provider}.mp4"
    path.write_bytes(video.content)
    assert details(path).duration == pytest.approx(sum(SCENES), abs=len(SCENES) / FPS), provider
