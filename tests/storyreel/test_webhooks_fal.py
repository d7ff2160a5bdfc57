"""fal webhook deliveries: ED25519 signatures checked against a JWKS, freshness, parsing."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from storyreel.contracts import PredictionPhase
from storyreel.webhooks.base import WebhookRejectedError, WebhookVerifier
from storyreel.webhooks.fal import FalWebhookVerifier

FIXTURES = Path(__file__).parents[1] / "fixtures" / "fal"
JWKS_URL = "https://rest.fal.ai/.well-known/jwks.json"
REQUEST_ID = "123e4567-e89b-12d3-a456-426614174000"
USER_ID = "user-42"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / f"{name}.json").read_bytes()


def jwks(*keys: Ed25519PrivateKey) -> dict[str, Any]:
    template = json.loads(fixture_bytes("jwks"))["keys"][0]
    entries = []
    for key in keys:
        raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        entries.append(template | {"x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()})
    # Keys of other kinds are skipped, not fatal.
    return {"keys": [{"kty": "RSA", "n": "abc", "e": "AQAB"}, *entries]}


def sign(
    key: Ed25519PrivateKey,
    body: bytes,
    *,
    timestamp: int | None = None,
    request_id: str = REQUEST_ID,
    user_id: str = USER_ID,
) -> dict[str, str]:
    """Headers as fal sends them (lower-cased, as the API hands them to a verifier)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hashlib.sha256(body).hexdigest()
    message = f"{request_id}\n{user_id}\n{stamp}\n{digest}".encode()
    return {
        "x-fal-webhook-request-id": request_id,
        "x-fal-webhook-user-id": user_id,
        "x-fal-webhook-timestamp": stamp,
        "x-fal-webhook-signature": key.sign(message).hex(),
    }


class Keys:
    """The JWKS endpoint: serves whatever keys it holds, counting fetches."""

    def __init__(self, *keys: Ed25519PrivateKey) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        return httpx.Response(200, json=jwks(*self.keys))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def verifier_for() -> AsyncIterator[Callable[..., FalWebhookVerifier]]:
    made: list[FalWebhookVerifier] = []

    def make(keys: Keys, **options: Any) -> FalWebhookVerifier:
        verifier = FalWebhookVerifier(JWKS_URL, transport=httpx.MockTransport(keys), **options)
        made.append(verifier)
        return verifier

    yield make
    for verifier in made:
        await verifier.aclose()


async def rejected(verifier: FalWebhookVerifier, headers: dict[str, str], body: bytes) -> int:
    with pytest.raises(WebhookRejectedError) as raised:
        await verifier.verify(headers, body)
    return raised.value.status_code


async def test_the_default_keys_are_fals_published_ones() -> None:
    verifier = FalWebhookVerifier()
    await verifier.aclose()
    assert verifier.jwks_url == JWKS_URL


async def test_a_signed_delivery_verifies_and_keys_are_cached(verifier_for, key) -> None:
    keys = Keys(key)
    verifier: WebhookVerifier = verifier_for(keys)
    body = fixture_bytes("webhook_ok")
    assert await verifier.verify(sign(key, body), body) == REQUEST_ID
    assert await verifier.verify(sign(key, body), body) == REQUEST_ID
    assert keys.fetches == 1


async def test_a_forged_signature_is_401(verifier_for, key) -> None:
    body = fixture_bytes("webhook_ok")
    forger = Ed25519PrivateKey.generate()
    assert await rejected(verifier_for(Keys(key)), sign(forger, body), body) == 401


async def test_a_tampered_body_is_401(verifier_for, key) -> None:
    body = fixture_bytes("webhook_error")
    headers = sign(key, body)
    tampered = body.replace(b'"ERROR"', b'"OK"')
    assert tampered != body
    assert await rejected(verifier_for(Keys(key)), headers, tampered) == 401


async def test_a_changed_header_is_401(verifier_for, key) -> None:
    body = fixture_bytes("webhook_ok")
    headers = sign(key, body) | {"x-fal-webhook-request-id": "someone-elses-request"}
    assert await rejected(verifier_for(Keys(key)), headers, body) == 401


@pytest.mark.parametrize("missing", ["signature", "timestamp", "user-id", "request-id"])
async def test_a_missing_header_is_401(verifier_for, key, missing: str) -> None:
    body = fixture_bytes("webhook_ok")
    headers = sign(key, body)
    del headers[f"x-fal-webhook-{missing}"]
    assert await rejected(verifier_for(Keys(key)), headers, body) == 401


async def test_a_signature_that_is_not_hex_is_401(verifier_for, key) -> None:
    body = fixture_bytes("webhook_ok")
    headers = sign(key, body) | {"x-fal-webhook-signature": "not-hex"}
    assert await rejected(verifier_for(Keys(key)), headers, body) == 401


@pytest.mark.parametrize("offset", [-301, 301, -3600])
async def test_a_timestamp_over_five_minutes_off_is_400(verifier_for, key, offset: int) -> None:
    body = fixture_bytes("webhook_ok")
    headers = sign(key, body, timestamp=int(time.time()) + offset)
    assert await rejected(verifier_for(Keys(key)), headers, body) == 400


async def test_a_timestamp_within_five_minutes_verifies(verifier_for, key) -> None:
    body = fixture_bytes("webhook_ok")
    headers = sign(key, body, timestamp=int(time.time()) - 290)
    assert await verifier_for(Keys(key)).verify(headers, body) == REQUEST_ID


async def test_a_timestamp_that_is_not_a_number_is_400(verifier_for, key) -> None:
    body = fixture_bytes("webhook_ok")
    headers = sign(key, body) | {"x-fal-webhook-timestamp": "yesterday"}
    assert await rejected(verifier_for(Keys(key)), headers, body) == 400


async def test_rotated_keys_are_fetched_again_but_not_for_every_forgery(verifier_for, key) -> None:
    now = [1_000_000.0]
    keys = Keys(key)
    verifier = verifier_for(keys, clock=lambda: now[0], refresh_after=60)
    body = fixture_bytes("webhook_ok")
    assert await verifier.verify(sign(key, body, timestamp=int(now[0])), body) == REQUEST_ID
    rotated = Ed25519PrivateKey.generate()
    keys.keys = [rotated]
    # Within refresh_after of the last fetch an unknown signature is simply refused...
    headers = sign(rotated, body, timestamp=int(now[0]))
    assert await rejected(verifier, headers, body) == 401
    assert keys.fetches == 1
    # ...after it, one fresh fetch finds the new key.
    now[0] += 61
    headers = sign(rotated, body, timestamp=int(now[0]))
    assert await verifier.verify(headers, body) == REQUEST_ID
    assert keys.fetches == 2


async def test_unreachable_keys_are_503_so_fal_delivers_again(verifier_for, key) -> None:
    keys = Keys(key)
    keys.down = True
    body = fixture_bytes("webhook_ok")
    assert await rejected(verifier_for(keys), sign(key, body), body) == 503


async def test_a_pinned_user_id_refuses_other_accounts(verifier_for, key) -> None:
    body = fixture_bytes("webhook_ok")
    verifier = verifier_for(Keys(key), user_id="us")
    assert await rejected(verifier, sign(key, body, user_id="them"), body) == 401
    assert await verifier.verify(sign(key, body, user_id="us"), body) == REQUEST_ID


# --------------------------------------------------------------------------------------------
# Parsing


@pytest.mark.parametrize(
    ("name", "phase"),
    [
        ("webhook_ok", PredictionPhase.succeeded),
        ("webhook_payload_error", PredictionPhase.succeeded),
        ("webhook_error", PredictionPhase.failed),
    ],
)
async def test_deliveries_parse_to_updates(verifier_for, key, name: str, phase) -> None:
    update = verifier_for(Keys(key)).parse(fixture_bytes(name))
    assert (update.prediction_id, update.phase) == (REQUEST_ID, phase)
    assert update.ended
    if phase is PredictionPhase.failed:
        assert update.error == "Invalid status code: 422: field required"


async def test_a_content_policy_error_is_a_refusal(verifier_for, key) -> None:
    delivery = json.loads(fixture_bytes("webhook_error"))
    delivery["payload"] = json.loads(fixture_bytes("error_content_policy"))
    update = verifier_for(Keys(key)).parse(json.dumps(delivery).encode())
    assert update.phase is PredictionPhase.refused
    assert "flagged by a content checker" in (update.error or "")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"status": "OK"}',
        b'{"request_id": "r1", "status": "MAYBE"}',
        b'{"request_id": "", "status": "OK"}',
        json.dumps({"request_id": "r" * 301, "status": "OK"}).encode(),
    ],
)
async def test_a_malformed_delivery_is_400(verifier_for, key, body: bytes) -> None:
    with pytest.raises(WebhookRejectedError) as raised:
        verifier_for(Keys(key)).parse(body)
    assert raised.value.status_code == 400
