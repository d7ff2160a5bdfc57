"""B8: the finished video lasts what was planned when models make only fixed clip lengths.

One run per model, through the API of the bench's stack, on provider ``replicate`` (the
simulator's copy of Replicate, which holds every create to the model's published input schema
and renders a clip of the length asked): Kling 2.1 makes 5 or 10 s, Hailuo 02 6 s at its
default 1080p, Veo 3 Fast 8 s (the catalogue's lengths). The scenes last lengths none of them
makes, so the clip stage asks each clip at the shortest length covering its scene (the longest
there is for a longer scene) and cuts, or slows and holds, it to the scene. The finish is the
default one (captions, crossfades, narration).

The finished video is downloaded as a user gets it and probed: its length (the container's,
and its picture's frames) against the plan's, within one frame per scene. The plan's is its
scenes (the planner keeps a caller's scenes on its 0.1 s grid: 4.33 s plans 4.3 s) less one
crossfade between each two neighbours.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
from harness import Stack
from inflight import when_all

from activities.media import ffmpeg
from activities.media.export import details
from storyreel.catalogue import lookup
from storyreel.contracts import (
    GENERATION_ENDED,
    PLATFORMS,
    GenerationRequest,
    GenerationState,
    GenerationStatus,
    Platform,
    Stage,
)

PROVIDER = "replicate"
MODELS = ("kwaivgi/kling-v2.1", "minimax/hailuo-02", "google/veo-3-fast")
# 2-10 s, none a length any of the models makes: trimmed from 5, 6, 8 and 10 s clips, and
# longer than Hailuo's 6 s and Veo's 8 s (slowed, then held).
SCENES = (2.4, 3.7, 4.3, 5.3, 6.8, 9.1)
PLATFORM = Platform.tiktok
# Ended, or waiting for someone to retry a failed clip: either way B8 has its answer.
SETTLED = GENERATION_ENDED | {GenerationStatus.awaiting_retry}


def planned_length(scenes: list[float], transition_seconds: float) -> float:
    """What the plan promises: every scene, less one overlap between each two neighbours."""
    return sum(scenes) - max(0, len(scenes) - 1) * transition_seconds


def video_frames(path: Path) -> int:
    """Frames in ``path``'s picture, counted by a stream copy into FFmpeg's null muxer."""
    done = subprocess.run(
        [ffmpeg.ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0",
         "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    counts = [line.split("=", 1)[1] for line in done.stdout.splitlines() if line[:6] == "frame="]
    return int(counts[-1])


def run_body(model: str, scenes: list[float], marker: str) -> dict[str, Any]:
    request = GenerationRequest.model_validate(
        {
            "title": f"B8 {model}",
            "scenes": [
                {"description": f"Scene {n}: the ferry crossing {marker}", "duration": seconds}
                for n, seconds in enumerate(scenes, start=1)
            ],
            "platform": PLATFORM.value,
            "provider": PROVIDER,
            "model": model,
            "use_cache": False,
        }
    )
    return request.model_dump(mode="json", exclude_none=True)


async def one_model(
    s: Stack, http: httpx.AsyncClient, model: str, scenes: list[float], work: Path
) -> dict[str, Any]:
    spec = lookup(PROVIDER, model)
    if spec is None:
        raise ValueError(f"{PROVIDER}/{model} is not in the catalogue")
    fps = PLATFORMS[PLATFORM].fps
    marker = uuid.uuid4().hex[:8]
    body = run_body(model, scenes, marker)
    answer = await http.post("/v1/generations", json=body)
    answer.raise_for_status()
    handle = s.client.get_workflow_handle(answer.json()["id"], result_type=GenerationState)
    (state,) = await when_all([handle], lambda state: state.status in SETTLED, every=1.0)
    plan = [scene.duration for scene in state.scenes]
    planned = planned_length(plan, body["transition_seconds"])
    log = await s.sim("GET", "/_sim/log")
    # This run's creates, in scene order.
    scene_of = re.compile(rf"Scene (\d+): the ferry crossing {marker}")
    creates = sorted(
        (int(found[1]), p["seconds"])
        for p in log["predictions"]
        if p["model"] == model and (found := scene_of.search(p["prompt"] or ""))
    )
    result: dict[str, Any] = {
        "model": model,
        "model_lengths": spec.durations.lengths(),
        "generation_id": handle.id,
        "status": state.status.value,
        "error": state.error,
        "scenes": scenes,
        "planned_scenes": plan,
        "planned": planned,
        "tolerance": len(scenes) / fps,
        "asked_seconds": [seconds for _, seconds in creates],
        "stretched": [w for w in state.warnings if "slowed down" in w or "held its last" in w],
        "ok": False,
    }
    if state.status is not GenerationStatus.completed:
        return result
    state = await handle.result()
    path = work / f"b8-{marker}.mp4"
    async with http.stream("GET", f"/v1/generations/{handle.id}/video") as video:
        video.raise_for_status()
        with path.open("wb") as out:
            async for chunk in video.aiter_bytes():
                out.write(chunk)
    info = await asyncio.to_thread(details, path)
    frames = await asyncio.to_thread(video_frames, path)
    picture = frames / fps
    stages = state.metrics.stage_seconds if state.metrics else {}
    result.update(
        finished=info.duration,
        picture_seconds=picture,
        frames=frames,
        planned_frames=round(planned * fps),
        difference=info.duration - planned,
        ratio=info.duration / planned,
        ok=max(abs(info.duration - planned), abs(picture - planned)) <= result["tolerance"],
        clip_stage_seconds=stages.get(Stage.clips),
        finish_seconds=stages.get(Stage.assemble),
        finish_steps=state.assembly.step_seconds if state.assembly else {},
        width=info.width,
        height=info.height,
    )
    return result


async def b8(
    s: Stack, models: list[str], scenes: list[float], latency: float, render: bool = True
) -> dict[str, Any]:
    """Each model's run in turn (so each finish has the machine to itself); ``render`` False:
    the simulator serves its tiny clip of each length (320x180, 10 fps) instead of drawing one
    at the model's size."""
    await s.sim("POST", "/_sim/config", json={"latency": latency, "render": render})
    work = s.embedded.data_dir / "b8"
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    async with httpx.AsyncClient(
        base_url=s.api_url, timeout=120, headers=s.headers, follow_redirects=True
    ) as http:
        for model in models:
            runs.append(await one_model(s, http, model, scenes, work))
    measured = [run["ratio"] for run in runs if "ratio" in run]
    return {
        "provider": PROVIDER,
        "platform": PLATFORM.value,
        "scenes": scenes,
        "runs": runs,
        "ok": all(run["ok"] for run in runs),
        # The ratio furthest from 1.
        "ratio": max(measured, key=lambda ratio: abs(ratio - 1.0)) if measured else 0.0,
    }
