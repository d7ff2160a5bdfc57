"""``GET /metrics`` and the per-generation series, on a bare app (no server needed)."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api import metrics as api_metrics
from storyreel.contracts import (
    GenerationMetrics,
    GenerationState,
    GenerationStatus,
    Platform,
    Stage,
    StitchResult,
)
from storyreel.metrics import WorkerMetrics, metrics_fields


def finished_state(status: GenerationStatus = GenerationStatus.completed) -> GenerationState:
    return GenerationState(
        generation_id=f"gen-{uuid.uuid4().hex[:8]}",
        title="t",
        status=status,
        platform=Platform.youtube_shorts,
        metrics=GenerationMetrics(
            stage_seconds={
                Stage.plan: 0.1, Stage.storyboard: 1.0, Stage.clips: 20.0,
                Stage.assemble: 6.0, Stage.publish: 0.0,
            },
            total_seconds=27.5,
            clip_wall_seconds=20.0,
            sum_clip_seconds=95.0,
            speedup=4.75,
            max_concurrent_clips=5,
            clips=5,
            bottleneck=Stage.clips,
        ),
        assembly=StitchResult(
            key="k", duration=9.0, width=1080, height=1920, stream_copy=False,
            step_seconds={"overlay": 2.0, "stitch": 3.0},
        ),
    )  # fmt: skip


async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    app = FastAPI()
    app.include_router(api_metrics.router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


async def test_metrics_endpoint_counts_each_finished_generation_once() -> None:
    before = await scrape()
    api_metrics.generation_started("youtube_shorts")
    state = finished_state()
    api_metrics.observe(state)
    api_metrics.observe(state)  # read again: not counted again
    api_metrics.observe(finished_state(GenerationStatus.failed))
    running = finished_state()
    running.status = GenerationStatus.generating
    api_metrics.observe(running)
    after = await scrape()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("storyreel_generations_started_total", platform="youtube_shorts") == 1
    ended = "storyreel_generations_ended_total"
    assert grew(ended, platform="youtube_shorts", status="completed") == 1
    assert grew(ended, platform="youtube_shorts", status="failed") == 1
    assert grew("storyreel_stage_seconds_count", stage="clips") == 2
    assert grew("storyreel_stage_seconds_sum", stage="clips") == pytest.approx(40.0)
    assert grew("storyreel_clip_speedup_sum") == pytest.approx(9.5)
    assert grew("storyreel_clips_at_once_sum") == 10
    assert grew("storyreel_clip_stage_sum_seconds_sum") == pytest.approx(190.0)
    assert grew("storyreel_bottleneck_stage_total", stage="clips") == 2
    assert grew("storyreel_assembly_step_seconds_count", step="overlay") == 2
    assert ("process_cpu_seconds_total", ()) in after  # the usual process series too


def test_worker_logs_one_line_with_every_metric(caplog: pytest.LogCaptureFixture) -> None:
    recorder = WorkerMetrics()
    state = finished_state()
    with caplog.at_level(logging.INFO, logger="storyreel.metrics"):
        recorder(state)
        recorder(state)  # a retried publish logs nothing more
    (line,) = [r for r in caplog.records if r.getMessage().startswith("generation finished")]
    text = line.getMessage()
    for field in ("speedup=4.75", "bottleneck=clips", "clips_seconds=20.0", "max_concurrent"):
        assert field in text
    assert line.generation_metrics == metrics_fields(state)  # type: ignore[attr-defined]
