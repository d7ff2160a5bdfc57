"""Every remote provider as deployed: ``python -m worker`` started from the environment alone
(no ``--queues``, nothing injected), its provider's variables pointing at the simulator's copy
of that provider's documented protocol, which holds real models to their published input
schemas. A generation goes in through the API and completes; each create carried the
storyboard in the model's own first-frame field and a length the model makes; the finished
video lasts what was planned (clips made at 5/6/8 s are trimmed to their 4 s scene).
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


@pytest.mark.parametrize(("provider", "model", "key"), CASES, ids=[c[0] for c in CASES])
async def test_a_deployed_worker_completes_a_run_on_a_real_models_schema(
    client: Client, settings: Settings, provider: str, model: str, key: str
) -> None:
    spec = lookup(provider, model)
    assert spec is not None and spec.first_frame_field
    settings.clip_providers = list(PROVIDERS)
    # Tiny outputs of the asked length: the schemas and the cuts are the point, not the pixels
    # (tests/workflows/test_model_runs.py looks at rendered ones).
    async with simulator(latency=0.5, seed=3, render=False) as sim:
        settings.simulator_url = None
        with processes() as started:
            worker = spawn(
                started, "worker", ["worker"], worker_env(settings, provider, key, sim.url)
            )
            async with api_for(client, settings) as http:
                body = {
                    "title": f"{provider} as deployed",
                    "scenes": [
                        {"description": f"scene {n}: the lighthouse at dusk", "duration": seconds}
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
                answer = await http.post("/v1/generations", json=body)
                assert answer.status_code == 202, answer.text
                generation = answer.json()["id"]
                state = await finished(http, generation, timeout=240)
                assert worker.process.poll() is None, "the worker stopped"
                video = await http.get(f"/v1/generations/{generation}/video")
                log = (await sim.http.get("/_sim/log")).json()

    assert state["status"] == "completed", state
    assert [clip["provider"] for clip in state["clips"]] == [provider] * len(SCENES)
    creates = [p for p in log["predictions"] if p["model"].removeprefix("models/") == model]
    assert len(creates) == len(SCENES), log["predictions"]
    lengths = spec.durations.lengths()
    for create in creates:
        # The storyboard went where this model takes its first frame; nothing was dropped.
        assert create["unknown_inputs"] == [], create
        assert create["seconds"] in lengths, create
    assert sorted(c["seconds"] for c in creates) == sorted(
        spec.durations.covering(s) for s in SCENES
    )
    # The quote billed those lengths.
    assert state["quote"]["billed_seconds"] == pytest.approx(
        sum(spec.durations.covering(s) for s in SCENES)
    )
    # Trimmed to the plan: the finished video lasts the scenes.
    assert video.status_code == 200
    path = settings.data_dir / "probe.mp4"
    path.write_bytes(video.content)
    assert details(path).duration == pytest.approx(sum(SCENES), abs=len(SCENES) / FPS)
