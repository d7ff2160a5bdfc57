"""Outbound webhooks ("notifications"): what a run's ``webhook`` is sent, and the rules of
where it may go.

Every event is signed as Standard Webhooks says (https://www.standardwebhooks.com):
``webhook-id`` (the event's id, the same on every retry and redelivery), ``webhook-timestamp``
(unix seconds of the attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`` under the owner's ``whsec_`` secret. The secret is read by the
sending activity at send time; it never travels in a workflow input.

A target must be https and resolve to public addresses only (no loopback, private,
link-local, multicast, unspecified or cloud metadata address), checked by the API when the
run is asked for and again, on the very address connected to, at every attempt (DNS
rebinding). ``webhook_allow_private`` (local development, the embedded stack) lifts both.

Not the inbound provider callbacks: those are ``storyreel.webhooks`` and ``api/webhooks.py``.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import socket
from collections.abc import Callable, Collection
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field
from standardwebhooks import Webhook

from storyreel.contracts import GenerationHeadline, GenerationState, WebhookEvent

NOTIFY_WORKFLOW_NAME = "NotifyWorkflow"
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# One attempt: connect, send and the first 64 KiB of the answer (the rest is never read).
SEND_TIMEOUT_SECONDS = 10.0
ANSWER_LIMIT_BYTES = 64 * 1024
USER_AGENT = "storyreel-webhooks/1"

IPAddress = IPv4Address | IPv6Address
# Instance metadata services: AWS/GCP/Azure/OpenStack (169.254.169.254), AWS over IPv6,
# ECS task metadata, Alibaba Cloud. Most are link-local too; named here for the message.
METADATA_ADDRESSES = frozenset(
    ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)


class NotifyInput(BaseModel):
    """Input of ``NotifyWorkflow`` and its ``deliver_webhook`` activity: one event for one
    target. No secret: the activity reads the owner's at send time."""

    event_id: str = Field(description="The webhook-id: one per event, kept by every retry.")
    type: str = Field(description="'generation.completed', 'batch.partial', ...")
    url: str
    user_id: int
    generation_id: str | None = None
    batch_id: str | None = None
    timestamp: datetime = Field(description="When the event happened (the body's timestamp).")
    data: dict[str, Any] = Field(default_factory=dict)
    retry_initial_seconds: float = Field(default=5.0, gt=0)

    def body(self) -> str:
        """The JSON body, compact, as signed and sent."""
        return json.dumps(
            {"type": self.type, "timestamp": self.timestamp.isoformat(), "data": self.data},
            separators=(",", ":"),
        )


class DeliveryResult(BaseModel):
    """A delivered event: which attempt the receiver took, and its status code."""

    delivery_id: str
    attempt: int
    status_code: int


class TargetRefusedError(Exception):
    """A webhook target this server does not call (its message says why)."""


# ---------------------------------------------------------------------------------------------
# Which events a run sends


def selects(events: Collection[WebhookEvent], status: str) -> bool:
    """Whether a change to ``status`` is one of ``events`` (``status`` selects them all)."""
    return WebhookEvent.status in events or status in {event.value for event in events}


def event_id(subject: str, sequence: int) -> str:
    """The id of a run's (or batch's) ``sequence``-th event: stable, so a replayed or
    restarted run starts the same event's delivery once."""
    return f"msg_{subject}_{sequence}"


def generation_data(state: GenerationState, api_base: str | None) -> dict[str, Any]:
    """What an event says of a generation: its headline, where to read it, the video's link
    once there is one."""
    url = f"{(api_base or '').rstrip('/')}/v1/generations/{state.generation_id}"
    data = state.model_dump(mode="json", include=set(GenerationHeadline.model_fields))
    return {
        "id": state.generation_id,
        **data,
        "url": url,
        "video_url": f"{url}/video" if state.video_key else None,
        "warnings": list(state.warnings),
    }


# ---------------------------------------------------------------------------------------------
# Where an event may go


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is no place to send a webhook, or None for a public address."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks: list[tuple[bool, str]] = [
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    ]
    return next((reason for failed, reason in checks if failed), None)


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (blocking); an address literal is itself."""
    try:
        return [ip_address(host.strip("[]"))]
    except ValueError:
        pass
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for *_, sockaddr in answers:
        address = ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


Resolver = Callable[[str, int], list[IPAddress]]


def checked_target(
    url: str, allow_private: bool, resolve: Resolver = resolve_host
) -> tuple[str, int, list[IPAddress]]:
    """``url``'s host, port and the addresses to connect to; :class:`TargetRefusedError`
    when it is not https, has no host, does not resolve, or resolves to any address that
    ``address_problem`` refuses (all of them are checked: a client may pick any). Blocking."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefusedError(f"{url!r} is not a URL: {error}") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed:
        raise TargetRefusedError(
            f"{url!r} is not an https URL"
            + ("" if allow_private else " (http only with STORYREEL_WEBHOOK_ALLOW_PRIVATE)")
        )
    host = parts.hostname
    if not host:
        raise TargetRefusedError(f"{url!r} has no host")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except (OSError, ValueError) as error:  # ValueError: a name IDNA cannot encode, a NUL
        raise TargetRefusedError(f"{host} does not resolve: {error}") from None
    if not addresses:
        raise TargetRefusedError(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem is not None:
                raise TargetRefusedError(
                    f"{host} resolves to {address}, {problem}: webhooks go to public https "
                    "hosts only (STORYREEL_WEBHOOK_ALLOW_PRIVATE=true allows others, for "
                    "local development)"
                )
    return host, port, addresses


# ---------------------------------------------------------------------------------------------
# Signing


def new_secret() -> str:
    """A fresh signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent at ``now`` (an aware datetime)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
