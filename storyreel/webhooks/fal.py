"""fal's webhook deliveries: signature checks, parsing, and how fal words an error.

fal POSTs ``{"request_id", "gateway_request_id", "status": "OK" | "ERROR", "payload", "error"}``
to the ``fal_webhook`` URL given on submit, with four headers: ``X-Fal-Webhook-Request-Id``,
``-User-Id``, ``-Timestamp`` (Unix seconds) and ``-Signature`` (hex). The signature is ED25519
over the lines ``request id``, ``user id``, ``timestamp`` and the hex SHA-256 of the raw body,
joined by newlines, made with one of the keys fal publishes as a JWKS (``OKP``/``Ed25519``,
base64url ``x``). fal retries a delivery it could not make, so one request may arrive twice.

The error helpers live here, in the kernel, because the API (through this verifier) and the fal
adapter (``activities.providers.fal_api``) must agree on what a content refusal looks like.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, InitVar, dataclass, field

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from storyreel.contracts import PredictionPhase, PredictionUpdate
from storyreel.webhooks.base import MAX_AGE_SECONDS, WebhookRejectedError

__all__ = ["DEFAULT_JWKS_URL", "FalWebhookVerifier", "error_text", "is_refusal", "signed_message"]

logger = logging.getLogger(__name__)

DEFAULT_JWKS_URL = "https://rest.fal.ai/.well-known/jwks.json"
"""Where fal's webhook documentation publishes its signing keys (older pages name the same
document on ``rest.alpha.fal.ai``)."""
JWKS_CACHE_SECONDS = 24 * 3600
REFUSAL_TYPES = frozenset({"content_policy_violation"})
# How fal and the models behind it word a refusal when no typed error says so.
_REFUSAL_MARKERS = (
    "content_policy_violation",
    "content policy",
    "flagged by a content checker",
    "flagged as sensitive",
    "nsfw",
    "moderation",
)
_MESSAGE_KEYS = ("msg", "detail", "error", "message")
HEADERS = (
    "x-fal-webhook-request-id",
    "x-fal-webhook-user-id",
    "x-fal-webhook-timestamp",
    "x-fal-webhook-signature",
)


def error_text(body: object) -> str | None:
    """The human words of a fal error: a model's ``detail`` list, a request error's ``detail``
    string, a webhook's ``error``; None when there are none."""
    if isinstance(body, str):
        return body.strip() or None
    if isinstance(body, list):
        texts = [text for item in body if (text := error_text(item))]
        return "; ".join(texts) or None
    if isinstance(body, Mapping):
        for key in _MESSAGE_KEYS:
            if text := error_text(body.get(key)):
                return text
    return None


def is_refusal(*bodies: object) -> bool:
    """Whether any of these error bodies (or messages) is a content-policy refusal."""
    return any(_refuses(body) for body in bodies)


def _refuses(body: object) -> bool:
    if isinstance(body, str):
        lowered = body.lower()
        return any(marker in lowered for marker in _REFUSAL_MARKERS)
    if isinstance(body, list):
        return any(_refuses(item) for item in body)
    if isinstance(body, Mapping):
        if body.get("type") in REFUSAL_TYPES or body.get("error_type") in REFUSAL_TYPES:
            return True
        return any(_refuses(body.get(key)) for key in _MESSAGE_KEYS)
    return False


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What fal signs for one delivery (the simulator signs the same)."""
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join((request_id, user_id, timestamp, digest)).encode()


def _public_keys(jwks: object) -> list[Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document; others (and broken entries) are skipped."""
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    keys: list[Ed25519PublicKey] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping) or entry.get("kty") != "OKP":
            continue
        if entry.get("crv") != "Ed25519" or not isinstance(x := entry.get("x"), str):
            continue
        try:
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            keys.append(Ed25519PublicKey.from_public_bytes(raw))
        except (ValueError, binascii.Error):
            logger.warning("fal JWKS: skipping a key that is not a valid Ed25519 key")
    return keys


def _verifies(key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@dataclass(eq=False)
class FalWebhookVerifier:
    """A ``WebhookVerifier`` for fal deliveries, checked against the keys at ``jwks_url``.

    Keys are fetched on first use and kept ``cache_seconds``; a signature no cached key accepts
    makes one fresh fetch (keys rotate), at most every ``refresh_after`` seconds so forged
    deliveries cannot turn into a flood of JWKS requests. ``user_id``, when given, must match
    the delivery's (fal signs deliveries for every account with the same keys). When the keys
    cannot be fetched the delivery is refused with 503, so fal delivers it again later.
    """

    jwks_url: str = DEFAULT_JWKS_URL
    _: KW_ONLY
    user_id: str | None = None
    transport: InitVar[httpx.AsyncBaseTransport | None] = None
    cache_seconds: float = JWKS_CACHE_SECONDS
    refresh_after: float = 60.0
    max_age: float = MAX_AGE_SECONDS
    clock: Callable[[], float] = time.time
    timeout: InitVar[float] = 10.0
    _http: httpx.AsyncClient = field(init=False)
    _keys: list[Ed25519PublicKey] = field(init=False, default_factory=list)
    _fetched_at: float | None = field(init=False, default=None)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self, transport: httpx.AsyncBaseTransport | None, timeout: float) -> None:
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout)

    def __repr__(self) -> str:
        return f"FalWebhookVerifier(jwks_url={self.jwks_url!r}, keys={len(self._keys)})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def verify(self, headers: Mapping[str, str], body: bytes) -> str:
        """Check a delivery's signature and age; return fal's request id (its delivery id:
        fal's redeliveries of one result carry the same one)."""
        request_id, user_id, timestamp, signature = (headers.get(name) for name in HEADERS)
        if not (request_id and user_id and timestamp and signature):
            raise WebhookRejectedError("missing fal webhook signature headers", 401)
        try:
            sent = int(timestamp)
        except ValueError:
            raise WebhookRejectedError("fal webhook timestamp is not a number", 400) from None
        if abs(self.clock() - sent) > self.max_age:
            raise WebhookRejectedError("fal webhook timestamp is too far from now", 400)
        try:
            raw = bytes.fromhex(signature)
        except ValueError:
            raise WebhookRejectedError("fal webhook signature is not hex", 401) from None
        if self.user_id is not None and user_id != self.user_id:
            raise WebhookRejectedError("fal webhook is for another fal account", 401)
        message = signed_message(request_id, user_id, timestamp, body)
        if any(_verifies(key, raw, message) for key in await self._current_keys()):
            return request_id
        if await self._refresh(stale_only=True) and any(
            _verifies(key, raw, message) for key in self._keys
        ):
            return request_id
        raise WebhookRejectedError("fal webhook signature does not verify", 401)

    def parse(self, body: bytes) -> PredictionUpdate:
        """OK is ``succeeded``; ERROR is ``refused`` when it reads like a content-policy
        refusal, ``failed`` otherwise. The output itself is read from the queue, not from here."""
        try:
            delivery = json.loads(body)
        except ValueError:
            raise WebhookRejectedError("fal webhook body is not JSON", 400) from None
        if not isinstance(delivery, dict):
            raise WebhookRejectedError("fal webhook body is not an object", 400)
        request_id, status = delivery.get("request_id"), delivery.get("status")
        if not isinstance(request_id, str) or status not in ("OK", "ERROR"):
            raise WebhookRejectedError("fal webhook body has no request_id or status", 400)
        error: str | None = None
        phase = PredictionPhase.succeeded
        if status == "ERROR":
            payload, reason = delivery.get("payload"), delivery.get("error")
            words = [text for text in (error_text(reason), error_text(payload)) if text]
            error = (": ".join(words) or "fal reported an error")[:2000]
            phase = (
                PredictionPhase.refused if is_refusal(reason, payload) else PredictionPhase.failed
            )
        try:
            return PredictionUpdate(prediction_id=request_id, phase=phase, error=error)
        except ValidationError as invalid:
            raise WebhookRejectedError(f"fal webhook body is malformed: {invalid}", 400) from None

    async def _current_keys(self) -> list[Ed25519PublicKey]:
        fetched = self._fetched_at
        if fetched is None or self.clock() - fetched > self.cache_seconds:
            await self._refresh(stale_only=False)
        return self._keys

    async def _refresh(self, *, stale_only: bool) -> bool:
        """Fetch the keys again; with ``stale_only`` only if the last fetch is old enough.
        Returns whether a fetch happened."""
        async with self._lock:
            fetched = self._fetched_at
            if stale_only and fetched is not None and self.clock() - fetched < self.refresh_after:
                return False
            try:
                response = await self._http.get(self.jwks_url)
                response.raise_for_status()
                keys = _public_keys(response.json())
            except (httpx.HTTPError, ValueError) as error:
                logger.warning("cannot fetch fal's webhook keys from %s: %s", self.jwks_url, error)
                if self._keys:
                    return False  # keep verifying with the keys we have
                raise WebhookRejectedError("cannot fetch fal's webhook signing keys", 503) from None
            if not keys:
                logger.warning("fal JWKS at %s holds no Ed25519 key", self.jwks_url)
            self._keys, self._fetched_at = keys, self.clock()
            return True
