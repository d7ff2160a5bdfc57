"""Replicate's webhooks: the Standard Webhooks signature and the prediction they carry.

Replicate signs every delivery with the account's signing secret (``whsec_`` + base64): the
headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (one or
more space-separated ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``). The secret comes from
``REPLICATE_WEBHOOK_SIGNING_SECRET`` or, once, from ``GET /v1/webhooks/default/secret``. The
simulator signs the same way with a secret of its own, so one verifier serves both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from storyreel.contracts import PredictionPhase, PredictionUpdate
from storyreel.webhooks.base import MAX_AGE_SECONDS, WebhookRejectedError

SECRET_PREFIX = "whsec_"
_TQDM_PERCENT = re.compile(r"(\d+)%\|")
_TQDM_COUNT = re.compile(r"(?<![\w/])(\d+)/(\d+)(?![\w/])")
# How Replicate and the models behind it word a content-moderation refusal.
_REFUSAL_MARKERS = (
    "flagged as sensitive",
    "nsfw",
    "safety",
    "content policy",
    "e005",
    "moderation",
)
_PHASES = {
    "starting": PredictionPhase.queued,
    "processing": PredictionPhase.running,
    "succeeded": PredictionPhase.succeeded,
    "failed": PredictionPhase.failed,
    "canceled": PredictionPhase.canceled,
    "aborted": PredictionPhase.canceled,
}

SecretSource = Callable[[], Awaitable[str]]


def is_refusal(message: str) -> bool:
    """Whether an upstream error message is a content-moderation refusal."""
    lowered = message.lower()
    return any(marker in lowered for marker in _REFUSAL_MARKERS)


def tqdm_percent(logs: str | None) -> float | None:
    """Percent done from the last tqdm-style progress line in a prediction's logs."""
    if not logs:
        return None
    for line in reversed(re.split(r"[\r\n]+", logs)):
        if match := _TQDM_PERCENT.search(line):
            return min(100.0, float(match[1]))
        if match := _TQDM_COUNT.search(line):
            done, total = int(match[1]), int(match[2])
            if 0 < total and done <= total:
                return round(100.0 * done / total, 1)
    return None


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_…`` secret (base64 after the prefix)."""
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("a webhook signing secret is 'whsec_' followed by base64") from error


def new_secret() -> str:
    """A fresh signing secret in Replicate's shape (the simulator's and the tests')."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def signature(key: bytes, webhook_id: str, timestamp: str, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``."""
    content = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, webhook_id: str, body: bytes, now: float) -> dict[str, str]:
    """The three headers of a delivery of ``body`` signed at ``now``."""
    timestamp = str(int(now))
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": signature(secret_key(secret), webhook_id, timestamp, body),
    }


def fetch_default_secret(
    base_url: str, api_token: str | None, *, transport: httpx.AsyncBaseTransport | None = None
) -> SecretSource:
    """A source reading the account's secret from ``GET /v1/webhooks/default/secret``."""

    async def fetch() -> str:
        headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
        async with httpx.AsyncClient(
            base_url=base_url.rstrip("/"), transport=transport, timeout=10.0
        ) as http:
            response = await http.get("/v1/webhooks/default/secret", headers=headers)
        if response.status_code != 200:
            raise WebhookRejectedError(
                f"could not read the webhook signing secret (HTTP {response.status_code})", 503
            )
        key = response.json().get("key") if response.content else None
        if not isinstance(key, str) or not key.startswith(SECRET_PREFIX):
            raise WebhookRejectedError("the webhook signing secret answer has no 'key'", 503)
        return key

    return fetch


class ReplicateWebhookVerifier:
    """Checks Standard Webhooks signatures with a secret given or fetched once."""

    def __init__(
        self,
        secret: str | None = None,
        source: SecretSource | None = None,
        *,
        clock: Callable[[], float] = time.time,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        if secret is None and source is None:
            raise ValueError("give a signing secret or a source to fetch it from")
        self._key = secret_key(secret) if secret else None
        self._source = source
        self._lock = asyncio.Lock()
        self._clock = clock
        self._max_age = max_age

    def __repr__(self) -> str:
        return f"ReplicateWebhookVerifier(secret={'set' if self._key else 'fetched'})"

    async def _signing_key(self) -> bytes:
        if self._key is not None:
            return self._key
        async with self._lock:
            if self._key is None:
                assert self._source is not None
                self._key = secret_key(await self._source())
            return self._key

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        webhook_id = headers.get("webhook-id")
        timestamp = headers.get("webhook-timestamp")
        signatures = headers.get("webhook-signature")
        if not webhook_id or not timestamp or not signatures:
            raise WebhookRejectedError("unsigned delivery: webhook-id, -timestamp, -signature")
        try:
            sent = int(timestamp)
        except ValueError:
            raise WebhookRejectedError("webhook-timestamp is not Unix seconds", 400) from None
        if abs(self._clock() - sent) > self._max_age:
            raise WebhookRejectedError("webhook-timestamp is too old or in the future", 400)
        expected = signature(await self._signing_key(), webhook_id, timestamp, body)
        for candidate in signatures.split():
            if hmac.compare_digest(candidate.encode(), expected.encode()):
                return webhook_id
        raise WebhookRejectedError("webhook-signature does not match")

    def parse(self, body: bytes) -> PredictionUpdate:
        return parse_prediction(body)


def parse_prediction(body: bytes) -> PredictionUpdate:
    """A delivered prediction (Replicate's JSON) as one update."""
    try:
        prediction: Any = json.loads(body)
    except ValueError:
        raise WebhookRejectedError("the delivery is not JSON", 400) from None
    if not isinstance(prediction, dict):
        raise WebhookRejectedError("the delivery is not a prediction", 400)
    ident, status = prediction.get("id"), prediction.get("status")
    if not isinstance(ident, str) or not ident or status not in _PHASES:
        raise WebhookRejectedError("the delivery has no prediction id or a bad status", 400)
    phase = _PHASES[status]
    error = prediction.get("error")
    if isinstance(error, dict):
        error = error.get("detail") or error.get("message") or json.dumps(error)
    message = str(error)[:2000] if error else None
    if phase is PredictionPhase.failed and message and is_refusal(message):
        phase = PredictionPhase.refused
    logs = prediction.get("logs")
    return PredictionUpdate(
        prediction_id=ident[:300],
        phase=phase,
        progress=tqdm_percent(logs if isinstance(logs, str) else None),
        error=message,
    )
