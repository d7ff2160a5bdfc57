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
from typing import TYPE_CHECKING, Any

import httpx

from storyreel.webhooks.replicate import signed_headers

if TYPE_CHECKING:
    from activities.simulator.engine import Prediction, Simulator

logger = logging.getLogger(__name__)

# Thousands of predictions may end at once: deliveries queue for a connection (no pool
# timeout) instead of failing, as a provider's delivery queue would.
DELIVERY_TIMEOUT = httpx.Timeout(10.0, pool=None)
DELIVERY_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)

WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
COMPLETED_TRIES = 5


class Deliveries:
    """Sends one simulator's webhooks on its event loop; ``close`` waits for none of them."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self._http: httpx.AsyncClient | None = None
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
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=DELIVERY_TIMEOUT, limits=DELIVERY_LIMITS)
        data = json.dumps(body).encode()
        counts = self.simulator.counts
        for attempt in range(COMPLETED_TRIES if retry else 1):
            headers = {
                "content-type": "application/json",
                **signed_headers(self.simulator.webhook_secret, delivery, data, time.time()),
            }
            try:
                response = await self._http.post(url, content=data, headers=headers)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            else:
                if response.status_code < 300:
                    counts.webhooks_sent += 1
                    return
                outcome = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break
            logger.info("delivery %s to %s failed (%s), try %d", delivery, url, outcome, attempt)
            await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
        counts.webhooks_failed += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
