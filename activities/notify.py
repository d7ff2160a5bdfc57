"""``deliver_webhook``: one signed POST of an event to its webhook, each attempt recorded.

The owner's secret is read from the record at send time (never from the workflow's input).
The target's host is resolved and every address checked at every attempt, and the request
goes to the address checked, not to a second lookup of the name (DNS rebinding). No
redirect is followed: a 3xx is a failed attempt, like every answer but a 2xx. Each attempt
is bounded: 10 s in all, and at most 64 KiB of the answer is read.

Every failure is retried by the workflow's policy (a receiver down, a 4xx from a handler
deployed broken: a day of retries gives its owner time to fix it), except a target that is
refused outright (``TargetRefusedError``: it resolves to an address webhooks never go to).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from ipaddress import IPv6Address
from urllib.parse import urlsplit, urlunsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from storyreel.db import Records
from storyreel.notify import (
    ANSWER_LIMIT_BYTES,
    SEND_TIMEOUT_SECONDS,
    DeliveryResult,
    IPAddress,
    NotifyInput,
    TargetRefusedError,
    checked_target,
    signed_headers,
)

NOT_DELIVERED = "WebhookNotDeliveredError"


class NotifyActivities:
    """Sends events; ``allow_private`` as ``webhook_allow_private`` says. ``transport`` is for
    tests that cannot reach a real receiver."""

    def __init__(
        self,
        records: Records,
        allow_private: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._records = records
        self._allow_private = allow_private
        self._transport = transport

    @activity.defn(name="deliver_webhook")
    async def deliver_webhook(self, notice: NotifyInput) -> DeliveryResult:
        """POST the event once; its delivery if the receiver answered 2xx, else an error
        the retry policy retries (both recorded as an attempt)."""
        notifications = self._records.notifications
        await asyncio.to_thread(notifications.record_event, notice)
        secret = await asyncio.to_thread(notifications.secret, notice.user_id)
        attempt = activity.info().attempt
        delivery_id = f"dlv_{uuid.uuid4().hex[:24]}"
        status_code: int | None = None
        error: str | None = None
        refused = False
        try:
            status_code, location = await self._send(notice, secret)
        except TargetRefusedError as problem:
            error, refused = f"refused: {problem}", True
        except TimeoutError:
            error = f"no answer within {SEND_TIMEOUT_SECONDS:g} s"
        except httpx.HTTPError as problem:
            error = f"{type(problem).__name__}: {problem}".rstrip(": ")
        else:
            if 300 <= status_code < 400:
                error = f"HTTP {status_code}: a redirect (to {location or 'nowhere'}), not followed"
            elif not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        await asyncio.to_thread(
            notifications.record_attempt, delivery_id, notice.event_id, attempt, status_code, error
        )
        if error is not None:
            activity.logger.warning("webhook %s attempt %d: %s", notice.event_id, attempt, error)
            raise ApplicationError(
                error,
                type="TargetRefusedError" if refused else NOT_DELIVERED,
                non_retryable=refused,
            )
        assert status_code is not None
        return DeliveryResult(delivery_id=delivery_id, attempt=attempt, status_code=status_code)

    async def _send(self, notice: NotifyInput, secret: str) -> tuple[int, str | None]:
        """POST to the checked address; the status code and any Location header."""
        host, port, addresses = await asyncio.to_thread(
            checked_target, notice.url, self._allow_private
        )
        parts = urlsplit(notice.url)
        target = urlunsplit(
            (parts.scheme, f"{_literal(addresses[0])}:{port}", parts.path or "/", parts.query, "")
        )
        body = notice.body()
        headers = signed_headers(secret, notice.event_id, body, datetime.now(UTC))
        headers["host"] = host if parts.port is None else f"{host}:{port}"
        # TLS is checked against the name (SNI and the certificate), not the address.
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        async with (
            asyncio.timeout(SEND_TIMEOUT_SECONDS),
            httpx.AsyncClient(
                transport=self._transport,
                timeout=SEND_TIMEOUT_SECONDS,
                follow_redirects=False,
                trust_env=False,
            ) as http,
            http.stream(
                "POST", target, content=body, headers=headers, extensions=extensions
            ) as response,
        ):
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= ANSWER_LIMIT_BYTES:
                    break
            return response.status_code, response.headers.get("location")


def _literal(address: IPAddress) -> str:
    return f"[{address}]" if isinstance(address, IPv6Address) else str(address)
