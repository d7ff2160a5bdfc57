"""The simulator's webhook deliveries, signed and shaped as Replicate's.

A prediction created with ``webhook`` is POSTed there on the events of its
``webhook_events_filter``: ``start``, ``output``, ``logs`` (at most one per
``webhook_logs_interval`` seconds) and ``completed``. Each delivery carries the prediction as it
stands and the Standard Webhooks headers (``storyreel.webhooks.replicate``). A ``completed``
delivery that fails is retried with backoff, as Replicate does; the knobs drop or duplicate
deliveries so the receiver's handling of lost and repeated ones can be tested.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from storyreel.webhooks.replicate import signed_headers

if TYPE_CHECKING:
    from activities.simulator.engine import Simulator
    from activities.simulator.prediction import Prediction

logger = logging.getLogger(__name__)

# Thousands of predictions may end at once: deliveries wait their turn for one of
# ``DELIVERY_CONNECTIONS`` senders, as a provider's delivery queue would. They wait on a
# semaphore, not in httpx's pool: the pool scans its whole queue on every request, so a
# thousand queued deliveries there cost quadratic CPU (B7 saw the simulator stall on it).
DELIVERY_CONNECTIONS = 100
DELIVERY_TIMEOUT = httpx.Timeout(10.0)
DELIVERY_LIMITS = httpx.Limits(
    max_connections=DELIVERY_CONNECTIONS, max_keepalive_connections=DELIVERY_CONNECTIONS
)

WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
COMPLETED_TRIES = 5


class Sender:
    """POSTs deliveries, at most ``DELIVERY_CONNECTIONS`` at once, retrying as it is told."""

    def __init__(self) -> None:
        self._http: httpx.AsyncClient | None = None
        self._turns = asyncio.Semaphore(DELIVERY_CONNECTIONS)

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Callable[[], dict[str, str]],
        *,
        tries: int,
        backoff: Callable[[int], float],
        final_4xx: bool,
    ) -> str | None:
        """None once delivered, else why the last try failed. ``headers`` signs each try when
        it is sent (a delivery that waited its turn, or retried later, is still fresh);
        ``final_4xx``: a 4xx other than 429 is not retried."""
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT, limits=DELIVERY_LIMITS)
        reason = "not sent"
        for attempt in range(tries):
            try:
                async with self._turns:
                    response = await self._http.post(url, content=body, headers=headers())
            except httpx.HTTPError as error:
                reason = f"{type(error).__name__}: {error}"
            else:
                if response.is_success:
                    return None
                reason = f"HTTP {response.status_code}"
                if final_4xx and 400 <= response.status_code < 500 and response.status_code != 429:
                    return reason
            logger.info("delivery to %s failed (%s), try %d/%d", url, reason, attempt + 1, tries)
            if attempt + 1 < tries:
                await asyncio.sleep(backoff(attempt))
        return reason

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()


class Deliveries:
    """Sends one simulator's webhooks on its event loop; ``close`` waits for none of them."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._sender = Sender()
        self._tasks: set[asyncio.Task[None]] = set()

    def notify(self, prediction: Prediction, event: str) -> None:
        """``prediction`` reached ``event``: deliver it if its creator asked for that event."""
        if prediction.webhook is None or event not in prediction.webhook_events:
            return
        config, counts = self.simulator.config, self.simulator.counts
        if event == "logs":
            now = time.monotonic()
            last = prediction.logs_sent_at
            if last is not None and now - last < config.webhook_logs_interval:
                return
            prediction.logs_sent_at = now
        rolls = self.simulator.fault_rolls
        if rolls.random() < config.webhook_drop_rate:
            counts.webhooks_dropped += 1
            logger.info("dropped the %s delivery of %s", event, prediction.id)
            return
        copies = 1
        if rolls.random() < config.webhook_duplicate_rate:
            counts.webhooks_duplicated += 1
            copies = 2
        body = prediction.to_json()
        delivery = f"msg_{uuid.uuid4().hex}"
        for _ in range(copies):
            task = asyncio.create_task(
                self._deliver(prediction.webhook, delivery, body, event == "completed")
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, delivery: str, body: dict[str, Any], retry: bool) -> None:
        data = json.dumps(body).encode()
        secret = self.simulator.webhook_secret

        def headers() -> dict[str, str]:
            signed = signed_headers(secret, delivery, data, time.time())
            return {"content-type": "application/json", **signed}

        failure = await self._sender.post(
            url,
            data,
            headers,
            tries=COMPLETED_TRIES if retry else 1,
            backoff=lambda attempt: min(8.0, 0.5 * 2**attempt),
            final_4xx=True,
        )
        if failure is None:
            self.simulator.counts.webhooks_sent += 1
        else:
            self.simulator.counts.webhooks_failed += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._sender.close()
