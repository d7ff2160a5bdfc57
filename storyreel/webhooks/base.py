"""What every provider's webhook handling provides to the API's public webhook route.

A provider calls ``POST /v1/webhooks/{provider}?generation=<id>&clip=<n>`` back. The route has
no bearer key: the delivery is authenticated by the provider's own signature, which a
``WebhookVerifier`` checks on the raw body before anything else reads it. A verified delivery
becomes one ``PredictionUpdate``; where it goes from there is the API's business.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from storyreel.contracts import PredictionUpdate

MAX_AGE_SECONDS = 300
"""Deliveries signed longer ago than this are refused (replays)."""


class WebhookRejectedError(Exception):
    """A delivery that must not be acted on; ``status_code`` is what the route answers."""

    def __init__(self, message: str, status_code: int = 401) -> None:
        super().__init__(message)
        self.status_code = status_code


class WebhookVerifier(Protocol):
    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check the signature and freshness of a delivery; return its delivery id.

        ``headers`` has lower-case names. Raises ``WebhookRejectedError`` (401 for a bad or
        missing signature, 400 for a malformed or stale one).
        """
        ...

    def parse(self, body: bytes) -> PredictionUpdate:
        """The verified body as one update; ``WebhookRejectedError(400)`` when malformed."""
        ...
