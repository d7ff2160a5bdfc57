"""``POST /v1/webhooks/{provider}``: providers calling back about a clip's prediction.

The route is public (providers hold no API key): each delivery is authenticated by the
provider's own signature, checked on the raw body before anything reads it. A verified
delivery that says a prediction ended becomes a ``prediction_update`` signal to the run named
in the URL (the run checks that the prediction is its clip's; early, repeated and late ones are
harmless). One that only reports progress is kept in ``clip_progress`` for state reads and
live events: signalling every progress line would bloat the run's history for nothing.

The API never downloads media: the run's clip worker copies the output after the signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from api.deps import RecordsDep, TemporalDep
from api.service import ID_PATTERN
from storyreel.contracts import (
    ClipStatus,
    PredictionPhase,
    PredictionSignal,
    PredictionUpdate,
)
from storyreel.settings import Settings
from storyreel.webhooks.base import WebhookRejectedError, WebhookVerifier
from storyreel.webhooks.fal import DEFAULT_JWKS_URL, FalWebhookVerifier
from storyreel.webhooks.replicate import ReplicateWebhookVerifier, fetch_default_secret

log = logging.getLogger("storyreel.api.webhooks")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

MAX_BODY_BYTES = 1 << 20
SEEN_DELIVERIES = 10_000
REPLICATE_API = "https://api.replicate.com"


class DeliveryAnswer(BaseModel):
    status: str
    """``accepted`` (acted on), ``duplicate`` (acted on before) or ``ignored`` (run gone)."""


class Webhooks:
    """The verifiers of the providers this API accepts calls from, and recent delivery ids."""

    def __init__(self, verifiers: dict[str, WebhookVerifier]) -> None:
        self.verifiers = verifiers
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def aclose(self) -> None:
        """Close the HTTP clients verifiers keep (fal's key fetches)."""
        for verifier in self.verifiers.values():
            close = getattr(verifier, "aclose", None)
            if close is not None:
                await close()

    def seen(self, provider: str, delivery: str) -> bool:
        return (provider, delivery) in self._seen

    def remember(self, provider: str, delivery: str) -> None:
        self._seen[(provider, delivery)] = None
        while len(self._seen) > SEEN_DELIVERIES:
            self._seen.popitem(last=False)


def webhooks_from_settings(settings: Settings) -> Webhooks:
    """A verifier for every provider configured to call back."""
    verifiers: dict[str, WebhookVerifier] = {}
    if settings.simulator_url:
        verifiers["simulator"] = ReplicateWebhookVerifier(
            source=fetch_default_secret(settings.simulator_url, "simulator")
        )
    secret = settings.replicate_webhook_signing_secret
    if secret is not None:
        verifiers["replicate"] = ReplicateWebhookVerifier(secret.get_secret_value())
    elif token := os.environ.get("REPLICATE_API_TOKEN"):
        base = os.environ.get("REPLICATE_BASE_URL") or REPLICATE_API
        verifiers["replicate"] = ReplicateWebhookVerifier(source=fetch_default_secret(base, token))
    if settings.fal_queue_url or os.environ.get("FAL_KEY"):
        jwks = settings.fal_jwks_url or DEFAULT_JWKS_URL
        verifiers["fal"] = FalWebhookVerifier(jwks)
    return Webhooks(verifiers)


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


_LIVE = {
    PredictionPhase.queued: ClipStatus.queued,
    PredictionPhase.running: ClipStatus.rendering,
}


@router.post(
    "/{provider}",
    response_model=DeliveryAnswer,
    responses={
        400: {"description": "Malformed or stale delivery."},
        401: {"description": "Missing or wrong signature."},
        404: {"description": "This API takes no calls from that provider."},
        503: {"description": "Temporal or the database is unavailable: deliver again."},
    },
)
async def deliver(
    provider: str,
    request: Request,
    client: TemporalDep,
    records: RecordsDep,
    generation: Annotated[str, Query(max_length=100, description="The run the clip is in.")],
    clip: Annotated[int, Query(ge=1, le=10_000, description="The clip (1-based).")],
) -> DeliveryAnswer | JSONResponse:
    """A provider's call about one clip's prediction, authenticated by its signature."""
    hooks: Webhooks = request.app.state.webhooks
    verifier = hooks.verifiers.get(provider)
    if verifier is None:
        return _problem(404, f"no webhooks are taken from {provider!r}")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return _problem(413, "the delivery is too large")
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        delivery = await verifier.verify(headers, body)
        update = verifier.parse(body)
    except WebhookRejectedError as error:
        log.warning("refused a %s delivery for %s: %s", provider, generation, error)
        return _problem(error.status_code, str(error))
    if not ID_PATTERN.match(generation):
        return _problem(400, "the generation in the URL is not an id")
    if hooks.seen(provider, delivery):
        return DeliveryAnswer(status="duplicate")
    if update.ended:
        answer = await _signal(client, generation, clip, update)
    else:
        answer = await _progress(records, generation, clip, update)
    if isinstance(answer, DeliveryAnswer):
        hooks.remember(provider, delivery)
    return answer


async def _signal(
    client: TemporalDep, generation: str, clip: int, update: PredictionUpdate
) -> DeliveryAnswer | JSONResponse:
    try:
        await client.get_workflow_handle(generation).signal(
            "prediction_update", PredictionSignal(clip_id=clip, update=update)
        )
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            # The run has ended (or never was): nothing waits for this prediction.
            return DeliveryAnswer(status="ignored")
        log.warning("could not signal %s: %s", generation, error)
        return _problem(503, "Temporal is unavailable; deliver again")
    log.info(
        "prediction %s of %s clip %d %s (webhook)",
        update.prediction_id,
        generation,
        clip,
        update.phase.value,
    )
    return DeliveryAnswer(status="accepted")


async def _progress(
    records: RecordsDep, generation: str, clip: int, update: PredictionUpdate
) -> DeliveryAnswer | JSONResponse:
    status = _LIVE.get(update.phase, ClipStatus.processing)
    if update.phase is PredictionPhase.running and update.progress is None:
        status = ClipStatus.processing  # booting: no frames yet
    try:
        await asyncio.to_thread(
            records.set_clip_progress,
            generation,
            clip,
            update.prediction_id,
            status,
            min(99.9, update.progress or 0.0),
        )
    except Exception as error:  # noqa: BLE001 - any database trouble: the provider retries
        log.warning("could not note progress of %s clip %d: %s", generation, clip, error)
        return _problem(503, "the database is unavailable; deliver again")
    return DeliveryAnswer(status="accepted")
