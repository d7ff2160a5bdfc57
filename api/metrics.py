"""``GET /metrics``: the API process's Prometheus series.

The API sees a generation only through its state, so it counts what it observes: a start when
``POST /v1/generations`` starts one (:func:`generation_started`), and a finished run's metrics
the first time it reads that run in a final state (:func:`observe`). The worker keeps its own
registry (stage and assembly-step timings, Temporal SDK metrics) on ``STORYREEL_METRICS_PORT``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from storyreel.contracts import GenerationState
from storyreel.metrics import GenerationRecorder, new_registry

REGISTRY = new_registry()
RECORDER = GenerationRecorder(REGISTRY)

router = APIRouter(tags=["ops"])


def generation_started(platform: str) -> None:
    """Count a generation the API started (call after the workflow start succeeded)."""
    RECORDER.generation_started(platform)


def observe(state: GenerationState) -> None:
    """Record a finished run's metrics, once per generation id; other states are ignored."""
    RECORDER.finished(state)


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics of this API process (text exposition format; no auth)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
