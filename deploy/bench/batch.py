"""Batch throughput: generations per minute when one batch of N items runs on the simulator.

The batch goes through the API as a user sends it (``POST /v1/batches``), with the default
batch concurrency unless the stack was started with another. Where the time goes comes from
each run's own record: seconds per stage (plan, storyboard, clips, assemble, publish), and
the time between the batch's start and each run's first stage (waiting for a batch slot).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
from harness import Stack

from storyreel.contracts import Stage

CLIPS_PER_RUN = 5


def item(index: int) -> dict[str, Any]:
    scenes = [
        {"description": f"Run {index}, scene {n}: {uuid.uuid4().hex[:6]}", "duration": 2}
        for n in range(1, CLIPS_PER_RUN + 1)
    ]
    return {
        "title": f"batch bench {index}",
        "scenes": scenes,
        "platform": "youtube",
        "provider": "simulator",
        "use_cache": False,
        # The default finish: captions burnt in and crossfades, so each run re-encodes.
    }


async def batch_throughput(s: Stack, items: int, latency: float) -> dict[str, Any]:
    await s.sim("POST", "/_sim/config", json={"latency": latency, "render": False})
    async with httpx.AsyncClient(base_url=s.api_url, timeout=120, headers=s.headers) as http:
        started = time.monotonic()
        answer = await http.post(
            "/v1/batches", json={"title": "bench", "items": [item(n) for n in range(items)]}
        )
        answer.raise_for_status()
        batch_id = answer.json()["id"]
        while True:
            view = (await http.get(f"/v1/batches/{batch_id}")).json()
            if view["status"] != "running":
                break
            await asyncio.sleep(0.5)
        wall = time.monotonic() - started
        stages: dict[str, list[float]] = {stage.value: [] for stage in Stage}
        waits: list[float] = []
        totals: list[float] = []
        for generation_id in view["generations"]:
            run = (await http.get(f"/v1/generations/{generation_id}")).json()
            timings = run["timings"]
            for timing in timings:
                if timing["ended_at"]:
                    seconds = _seconds(timing["started_at"], timing["ended_at"])
                    stages[timing["stage"]].append(seconds)
            if timings and timings[-1]["ended_at"]:
                totals.append(_seconds(timings[0]["started_at"], timings[-1]["ended_at"]))
            if timings:
                waits.append(_seconds(view["created_at"], timings[0]["started_at"]))
    completed = view["counts"].get("completed", 0)
    mean = {stage: sum(values) / len(values) for stage, values in stages.items() if values}
    return {
        "items": items,
        "latency": latency,
        "status": view["status"],
        "completed": completed,
        "wall": wall,
        "per_minute": completed / wall * 60,
        "mean_stage_seconds": mean,
        "sum_stage_seconds": {stage: sum(values) for stage, values in stages.items()},
        "mean_run_seconds": sum(totals) / len(totals) if totals else 0.0,
        "mean_wait_for_slot_seconds": sum(waits) / len(waits) if waits else 0.0,
        "bottleneck": max(mean, key=mean.__getitem__) if mean else None,
    }


def _seconds(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
