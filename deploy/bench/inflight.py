"""B7: a thousand clips in flight at once on one worker process, called back by webhooks.

Every clip is a simulator prediction of ``latency`` seconds that calls the API back; the
runs wait on durable timers, so the worker holds no activity slot while the predictions run.
Measured: that every clip completes, how many times the provider was read per clip (the
webhook path needs one read, for the copy; polling reads every interval), the worker's peak
RSS, and the clip stage's wall time against the latency.

The same figures for polling mode come from a smaller sample (polling a thousand clips every
2 s is the load this mode exists to avoid).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Stack, stack

from activities.simulator import SimulatorConfig
from storyreel.contracts import CLIP_ENDED, ClipStatus, GenerationRequest, GenerationState, Stage
from storyreel.generations import start_generation

CLIPS_PER_RUN = 10
# The one clip-worker process B7 measures (the workflows and the simulator's clips), and a
# media worker for the storyboards, stopped before the clips end.
SPLIT: dict[str, str | None] = {"worker": "workflows,clips:simulator", "media": "media,clips:local"}
SCENES = [f"Scene {n}: the harbour at a different hour" for n in range(1, CLIPS_PER_RUN + 1)]


def run_request(index: int) -> GenerationRequest:
    """Ten clips; the scenes (so the storyboards, cached) are shared, the clips are not (each
    run's consistency context makes its prompts unique)."""
    return GenerationRequest.model_validate(
        {
            "title": f"in flight {index}",
            "scenes": [{"description": text, "duration": 2} for text in SCENES],
            "platform": "youtube",
            "provider": "simulator",
            "consistency_context": f"run {index} {uuid.uuid4().hex[:8]}",
            "max_parallel_clips": CLIPS_PER_RUN,
            "captions": False,
            "transition": "none",
        }
    )


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def when_all(
    handles: list[Any], ready: Callable[[GenerationState], bool], every: float
) -> list[GenerationState]:
    """Every run's state once ``ready`` holds for all of them (queried, ten at a time)."""
    gate = asyncio.Semaphore(10)

    async def state(handle: Any) -> GenerationState:
        async with gate:
            answer: GenerationState = await handle.query("get_state", result_type=GenerationState)
            return answer

    while True:
        states = await asyncio.gather(*(state(h) for h in handles))
        if all(ready(state) for state in states):
            return list(states)
        await asyncio.sleep(every)


def past_storyboard(state: GenerationState) -> bool:
    return state.stage not in (None, Stage.plan, Stage.storyboard)


def clips_ended(state: GenerationState) -> bool:
    return bool(state.clips) and all(clip.status in CLIP_ENDED for clip in state.clips)


async def in_flight(s: Stack, clips: int, latency: float) -> dict[str, Any]:
    runs = max(1, clips // CLIPS_PER_RUN)
    started = time.monotonic()
    # The first run draws the shared storyboards; the others find them in the cache (B7
    # measures clips in flight, not a thousand FFmpeg storyboard renders).
    first = await start_generation(s.client, s.settings, run_request(0))
    await when_all([first], past_storyboard, every=0.5)
    handles = [first] + list(
        await asyncio.gather(
            *(start_generation(s.client, s.settings, run_request(n)) for n in range(1, runs))
        )
    )
    if "media" in s.pids:
        # Every storyboard is drawn once each run is in its clip stage: the media worker stops,
        # so no run's stitching (a hundred 1080p encodes on two cores) competes with the clips.
        await when_all(handles, past_storyboard, every=1.0)
        await asyncio.to_thread(s.embedded.stop_one, "media")
    states = await when_all(handles, clips_ended, every=2.0)
    wall = time.monotonic() - started
    log = await s.sim("GET", "/_sim/log")
    rss = peak_rss_mib(s.pids["worker"])
    # The clip stage is what B7 is about: the runs' stitching is neither run nor waited for.
    await asyncio.gather(*(h.terminate("B7 measured its clips") for h in handles))
    every = [clip for state in states for clip in state.clips]
    done = sum(1 for clip in every if clip.status is ClipStatus.complete)
    gets = [p["gets"] for p in log["predictions"]]
    starts = [c.started_at for c in every if c.started_at]
    began = min(starts)
    ended = max(c.ended_at for c in every if c.ended_at)
    return {
        "clips": len(every),
        "completed_clips": done,
        "creates": log["counts"]["creates"],
        "reads_per_clip": sum(gets) / max(1, len(gets)),
        "max_reads_per_clip": max(gets, default=0),
        "reads_histogram": {str(n): gets.count(n) for n in sorted(set(gets))},
        "webhooks_sent": log["counts"]["webhooks_sent"],
        "webhooks_failed": log["counts"]["webhooks_failed"],
        "worker_peak_rss_mib": rss,
        "clip_stage_seconds": (ended - began).total_seconds(),
        # Where the stage's time goes: starting a thousand clips (the last one starts this
        # long after the first) and each clip's own life (prediction, webhook, copy).
        "start_spread_seconds": (max(starts) - began).total_seconds(),
        "median_clip_seconds": statistics.median(
            (c.ended_at - c.started_at).total_seconds()
            for c in every
            if c.ended_at and c.started_at
        ),
        "clip_stage_vs_latency": (ended - began).total_seconds() / latency,
        "wall": wall,
    }


async def b7(work: Path, clips: int, latency: float, polling_clips: int) -> dict[str, Any]:
    config = SimulatorConfig(latency=latency, render=False, seed=7, webhook_logs_interval=15)
    # Activities are short with webhooks: 100 at once (the HTTP client's pool) serve 1,000
    # predictions in flight. Polling holds one per prediction.
    async with stack(
        work / "b7-webhooks",
        config,
        poll_interval=2.0,
        webhooks=True,
        clip_concurrency=100,
        workers=SPLIT,
    ) as s:
        called_back = await in_flight(s, clips, latency)
    async with stack(
        work / "b7-polling",
        config,
        poll_interval=2.0,
        clip_concurrency=max(100, polling_clips),
        workers=SPLIT,
    ) as s:
        polled = await in_flight(s, polling_clips, latency)
    return {"webhooks": called_back, "polling": polled, "latency": latency}
