"""The webhook service: a provider's verified call about a clip's prediction, acted on once.

A delivery that says a prediction ended becomes a ``prediction_update`` signal to the run
named in the URL (the run checks that the prediction is its clip's; early, repeated and late
ones are harmless). One that only reports progress is kept in ``clip_progress`` for state
reads and live events: signalling every progress line would bloat the run's history for
nothing. The API never downloads media: the run's clip worker copies the output after the
signal.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Literal

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.service import ID_PATTERN
from storyreel.contracts import ClipStatus, PredictionPhase, PredictionSignal, PredictionUpdate
from storyreel.db import Records
from storyreel.providers import PROVIDERS, enabled_providers
from storyreel.settings import Settings
from storyreel.webhooks.base import WebhookRejectedError, WebhookVerifier
from storyreel.webhooks.fal import DEFAULT_JWKS_URL, FalWebhookVerifier
from storyreel.webhooks.replicate import ReplicateWebhookVerifier, fetch_default_secret

log = logging.getLogger("storyreel.api.webhooks")

MAX_BODY_BYTES = 1 << 20
SEEN_DELIVERIES = 10_000

Outcome = Literal["accepted", "duplicate", "ignored"]
"""``accepted`` (acted on), ``duplicate`` (acted on before) or ``ignored`` (run gone)."""

_LIVE = {
    PredictionPhase.queued: ClipStatus.queued,
    PredictionPhase.running: ClipStatus.rendering,
}


class Deliveries:
    """The verifiers of the providers this API accepts calls from, and recent delivery ids.

    Every refusal is a ``WebhookRejectedError`` whose ``status_code`` the route answers: 404 for
    a provider not taken, 413 too large, 400/401 malformed or unsigned, 503 when Temporal or the
    database is away (the provider delivers again).
    """

    def __init__(
        self, verifiers: dict[str, WebhookVerifier], client: Client, records: Records
    ) -> None:
        self.verifiers = verifiers
        self.client = client
        self.records = records
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def aclose(self) -> None:
        """Close the HTTP clients verifiers keep (fal's key fetches)."""
        for verifier in self.verifiers.values():
            close = getattr(verifier, "aclose", None)
            if close is not None:
                await close()

    async def receive(
        self,
        provider: str,
        headers: Mapping[str, str],
        body: bytes,
        generation: str,
        clip: int,
    ) -> Outcome:
        """Verify one delivery (``headers`` with lower-case names) and act on it."""
        verifier = self.verifiers.get(provider)
        if verifier is None:
            raise WebhookRejectedError(f"no webhooks are taken from {provider!r}", 404)
        if len(body) > MAX_BODY_BYTES:
            raise WebhookRejectedError("the delivery is too large", 413)
        try:
            delivery = await verifier.verify(headers, body)
            update = verifier.parse(body)
        except WebhookRejectedError as error:
            log.warning("refused a %s delivery for %s: %s", provider, generation, error)
            raise
        if not ID_PATTERN.match(generation):
            raise WebhookRejectedError("the generation in the URL is not an id", 400)
        if (provider, delivery) in self._seen:
            return "duplicate"
        if update.ended:
            outcome = await self._signal(generation, clip, update)
        else:
            outcome = await self._progress(generation, clip, update)
        self._seen[(provider, delivery)] = None
        while len(self._seen) > SEEN_DELIVERIES:
            self._seen.popitem(last=False)
        return outcome

    async def _signal(self, generation: str, clip: int, update: PredictionUpdate) -> Outcome:
        try:
            await self.client.get_workflow_handle(generation).signal(
                "prediction_update", PredictionSignal(clip_id=clip, update=update)
            )
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                # The run has ended (or never was): nothing waits for this prediction.
                return "ignored"
            log.warning("could not signal %s: %s", generation, error)
            raise WebhookRejectedError("Temporal is unavailable; deliver again", 503) from None
        log.info(
            "prediction %s of %s clip %d %s (webhook)",
            update.prediction_id,
            generation,
            clip,
            update.phase.value,
        )
        return "accepted"

    async def _progress(self, generation: str, clip: int, update: PredictionUpdate) -> Outcome:
        status = _LIVE.get(update.phase, ClipStatus.processing)
        if update.phase is PredictionPhase.running and update.progress is None:
            status = ClipStatus.processing  # booting: no frames yet
        try:
            await asyncio.to_thread(
                self.records.set_clip_progress,
                generation,
                clip,
                update.prediction_id,
                status,
                min(99.9, update.progress or 0.0),
            )
        except Exception as error:  # noqa: BLE001 - any database trouble: the provider retries
            log.warning("could not note progress of %s clip %d: %s", generation, clip, error)
            raise WebhookRejectedError("the database is unavailable; deliver again", 503) from None
        return "accepted"


def deliveries_from_settings(settings: Settings, client: Client, records: Records) -> Deliveries:
    """A verifier for every provider of the registry that calls back and is switched on."""
    verifiers: dict[str, WebhookVerifier] = {}
    # A signing secret alone is enough to check deliveries (the API needs no provider key).
    signing = [spec for spec in PROVIDERS.values() if spec.signing_secret(settings)]
    for spec in {spec.name: spec for spec in [*enabled_providers(settings), *signing]}.values():
        if spec.verifier == "replicate":
            secret = spec.signing_secret(settings)
            verifiers[spec.name] = (
                ReplicateWebhookVerifier(secret)
                if secret
                else ReplicateWebhookVerifier(
                    source=fetch_default_secret(spec.base_url(settings), spec.key(settings))
                )
            )
        elif spec.verifier == "fal":
            verifiers[spec.name] = FalWebhookVerifier(settings.fal_jwks_url or DEFAULT_JWKS_URL)
    return Deliveries(verifiers, client, records)
