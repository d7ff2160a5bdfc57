"""Per-generation metrics: Prometheus series and one structured log line per finished run.

The workflow computes :class:`~storyreel.contracts.GenerationMetrics` into the final state;
whoever sees that state (the worker when the publish activity runs, the API when it reads a
finished run) records it here. Each process has its own registry, exposed by its own endpoint.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from threading import Lock
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)

from storyreel.contracts import GENERATION_ENDED, GenerationState

log = logging.getLogger("storyreel.metrics")

SECONDS_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600, 4 * 3600)
SPEEDUP_BUCKETS = (0.5, 1, 1.5, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 64)
CLIPS_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 32, 64)
# How many finished ids a recorder remembers so a run read twice is counted once.
REMEMBERED = 10_000
# The clip stage's figures of a run that made clips, one unlabelled histogram each: the
# GenerationMetrics field observed -> the series, its help and its buckets.
CLIP_STAGE_SERIES: dict[str, tuple[str, str, tuple[float, ...]]] = {
    "clip_wall_seconds": (
        "storyreel_clip_stage_wall_seconds",
        "Wall seconds of the clip stage (all clips together).",
        SECONDS_BUCKETS,
    ),
    "sum_clip_seconds": (
        "storyreel_clip_stage_sum_seconds",
        "Sum of every clip's own time: what the clip stage would take one by one.",
        SECONDS_BUCKETS,
    ),
    "max_concurrent_clips": (
        "storyreel_clips_at_once",
        "Most clips that ran at the same time in one generation.",
        CLIPS_BUCKETS,
    ),
}


def new_registry(process: bool = True) -> CollectorRegistry:
    """A registry of our own (tests and several apps in one process never collide), with the
    process, platform and GC collectors a scrape usually expects."""
    registry = CollectorRegistry()
    if process:
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


class GenerationRecorder:
    """The generation series in one registry; :meth:`finished` counts each run once."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.started = Counter(
            "storyreel_generations_started",
            "Generations started.",
            ["platform"],
            registry=registry,
        )
        self.ended = Counter(
            "storyreel_generations_ended",
            "Generations that reached a final status (completed, failed, cancelled).",
            ["status", "platform"],
            registry=registry,
        )
        self.stage_seconds = self._histogram(
            "storyreel_stage_seconds",
            "Wall seconds per stage (the clip stage without time spent awaiting a retry).",
            SECONDS_BUCKETS,
            "stage",
        )
        self.generation_seconds = self._histogram(
            "storyreel_generation_seconds",
            "Wall seconds from start to end of a generation, waiting included.",
            SECONDS_BUCKETS,
            "status",
        )
        self.clip_stage = {
            field: self._histogram(name, documentation, buckets)
            for field, (name, documentation, buckets) in CLIP_STAGE_SERIES.items()
        }
        self.speedup = self._histogram(
            "storyreel_clip_speedup",
            "Parallel speedup of the clip stage: sum of clip times / wall time.",
            SPEEDUP_BUCKETS,
        )
        self.bottleneck = Counter(
            "storyreel_bottleneck_stage",
            "Generations whose longest stage was this one.",
            ["stage"],
            registry=registry,
        )
        self.assembly_steps = self._histogram(
            "storyreel_assembly_step_seconds",
            "Seconds per assembly step (fetch, overlay, stitch, narration, mix, export...).",
            SECONDS_BUCKETS,
            "step",
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = Lock()

    def _histogram(
        self, name: str, documentation: str, buckets: tuple[float, ...], *labels: str
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

    def generation_started(self, platform: str) -> None:
        """Count a started generation."""
        self.started.labels(platform=platform).inc()

    def finished(self, state: GenerationState) -> bool:
        """Record a run that reached a final status, once per id; False if not recorded."""
        if state.status not in GENERATION_ENDED:
            return False
        with self._lock:
            if state.generation_id in self._seen:
                return False
            self._seen[state.generation_id] = None
            while len(self._seen) > REMEMBERED:
                self._seen.popitem(last=False)
        self.ended.labels(status=state.status.value, platform=state.platform.value).inc()
        metrics = state.metrics
        if metrics is None:  # a run that ended before metrics existed
            return True
        self.generation_seconds.labels(status=state.status.value).observe(metrics.total_seconds)
        for stage, seconds in metrics.stage_seconds.items():
            self.stage_seconds.labels(stage=stage.value).observe(seconds)
        if metrics.clips:
            for field, histogram in self.clip_stage.items():
                histogram.observe(getattr(metrics, field))
        if metrics.speedup is not None:
            self.speedup.observe(metrics.speedup)
        if metrics.bottleneck is not None:
            self.bottleneck.labels(stage=metrics.bottleneck.value).inc()
        if state.assembly is not None:
            for step, seconds in state.assembly.step_seconds.items():
                self.assembly_steps.labels(step=step).observe(seconds)
        return True


def metrics_fields(state: GenerationState) -> dict[str, Any]:
    """Every metric of a finished run as flat, JSON-ready fields."""
    fields: dict[str, Any] = {
        "generation_id": state.generation_id,
        "status": state.status.value,
        "platform": state.platform.value,
        "provider": state.provider,
        "clips": len(state.clips),
        "skipped_clips": len(state.skipped_clips),
        "cost": state.cost,
        "duration": state.duration,
    }
    if (metrics := state.metrics) is not None:
        # Every figure of the metrics as it is named there; the stages flattened below, and
        # the clip count is the state's own above.
        fields.update(metrics.model_dump(mode="json", exclude={"stage_seconds", "clips"}))
        fields.update(
            {f"{stage.value}_seconds": seconds for stage, seconds in metrics.stage_seconds.items()}
        )
    if (assembly := state.assembly) is not None:
        fields.update(
            overlay_mode=assembly.overlay_mode,
            join_mode=assembly.mode,
            size_bytes=assembly.size_bytes,
            bit_rate=assembly.bit_rate,
        )
        fields.update({f"assembly_{step}_seconds": s for step, s in assembly.step_seconds.items()})
    return fields


def log_generation(state: GenerationState) -> None:
    """One line per finished run with every metric: ``key=value`` text plus ``extra`` fields
    for structured (JSON) handlers."""
    fields = metrics_fields(state)
    text = " ".join(f"{name}={value}" for name, value in fields.items() if value is not None)
    log.info("generation finished %s", text, extra={"generation_metrics": fields})


class WorkerMetrics:
    """What the worker records when it publishes a finished run: series and the log line."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else new_registry(process=False)
        self.recorder = GenerationRecorder(self.registry)

    def __call__(self, state: GenerationState) -> None:
        if self.recorder.finished(state):
            log_generation(state)
