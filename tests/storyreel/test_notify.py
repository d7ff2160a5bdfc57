"""Outbound webhooks, the pure rules: signatures a Standard Webhooks receiver verifies, the
targets refused, the events a filter selects, a retry policy that lasts a day."""

from __future__ import annotations

import base64
import socket
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from storyreel.contracts import DEFAULT_WEBHOOK_EVENTS, WebhookEvent
from storyreel.notify import (
    IPAddress,
    NotifyInput,
    TargetRefusedError,
    checked_target,
    new_secret,
    selects,
    signed_headers,
)
from workflows.policies import NOTIFY_WINDOW, notify_retry

pytestmark = pytest.mark.fast

PUBLIC = ip_address("93.184.215.14")


def _notice() -> NotifyInput:
    return NotifyInput(
        event_id="msg_gen-1_1",
        type="generation.completed",
        url="https://hooks.example.com/x",
        user_id=1,
        generation_id="gen-1",
        timestamp=datetime(2026, 12, 2, 20, 0, tzinfo=UTC),
        data={"id": "gen-1", "status": "completed"},
    )


def test_a_signature_verifies_with_the_secret_and_only_with_it() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) >= 24
    notice = _notice()
    body = notice.body()
    headers = signed_headers(secret, notice.event_id, body, datetime.now(UTC))
    assert headers["webhook-id"] == "msg_gen-1_1"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {
        "type": "generation.completed",
        "timestamp": "2026-12-02T20:00:00+00:00",
        "data": {"id": "gen-1", "status": "completed"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("completed", "failed"), headers)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "::1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
        "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "0.0.0.0", "::", "224.0.0.1",
        "::ffff:127.0.0.1", "100.64.0.1", "fe80::1", "fc00::5",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(TargetRefusedError, match=r"resolves to .*: webhooks go to public"):
        checked_target(f"https://{literal}/hook", allow_private=False)
    host, _, addresses = checked_target(f"https://{literal}/hook", allow_private=True)
    assert addresses == [ip_address(address)]


def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    """A client may connect to any address a name has: all of them must be public."""

    def resolve(_host: str, _port: int) -> list[IPAddress]:
        return [PUBLIC, ip_address("10.0.0.7")]

    with pytest.raises(TargetRefusedError, match="10.0.0.7, a private address"):
        checked_target("https://hooks.example.com/x", False, resolve)
    host, port, addresses = checked_target("https://hooks.example.com:8443/x", True, resolve)
    assert (host, port, addresses[0]) == ("hooks.example.com", 8443, PUBLIC)


def test_only_https_unless_private_targets_are_allowed() -> None:
    with pytest.raises(TargetRefusedError, match="not an https URL"):
        checked_target(f"http://{PUBLIC}/x", allow_private=False)
    with pytest.raises(TargetRefusedError, match="not an https URL"):
        checked_target("ftp://example.com/x", allow_private=True)
    with pytest.raises(TargetRefusedError, match="no host"):
        checked_target("https:///x", allow_private=False)
    assert checked_target(f"https://{PUBLIC}/x", allow_private=False)[2] == [PUBLIC]
    assert checked_target(f"http://{PUBLIC}/x", allow_private=True)[1] == 80


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def nowhere(host: str, _port: int) -> list[IPAddress]:
        raise socket.gaierror(socket.EAI_NONAME, f"{host}: Name or service not known")

    with pytest.raises(TargetRefusedError, match="does not resolve"):
        checked_target("https://no-such-host.invalid/x", False, nowhere)
    with pytest.raises(TargetRefusedError, match="does not resolve"):
        checked_target("https://empty.example/x", True, lambda _host, _port: [])


def test_the_filter_selects_its_events_and_status_selects_every_change() -> None:
    default = list(DEFAULT_WEBHOOK_EVENTS)
    assert not selects(default, "planning") and not selects(default, "awaiting_approval")
    assert selects(default, "completed") and selects(default, "cancelled")
    assert selects([WebhookEvent.status], "planning")
    assert selects([WebhookEvent.awaiting_retry], "awaiting_retry")
    assert not selects([WebhookEvent.awaiting_retry], "failed")


def test_the_retry_policy_keeps_trying_for_at_least_a_day() -> None:
    policy = notify_retry(5.0)
    assert policy.maximum_attempts == 0  # unlimited within the window
    assert NOTIFY_WINDOW >= timedelta(hours=24)
    assert policy.initial_interval == timedelta(seconds=5)
    assert policy.backoff_coefficient == 2.0
    assert policy.maximum_interval == timedelta(hours=1)
    # How many tries a day holds: doubling from 5 s to the hour, then hourly.
    waited, wait, tries = 0.0, 5.0, 1
    while waited + wait <= 24 * 3600:
        waited, wait, tries = waited + wait, min(wait * 2, 3600), tries + 1
    assert tries > 20
