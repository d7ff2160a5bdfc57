"""Outbound webhooks, the API's side: the caller's signing secret, the delivery attempts of
their runs and batches, and a redelivery of one event. (The providers' calls to us are
``api/deliveries.py`` and ``api/webhooks.py``.)"""

from __future__ import annotations

import asyncio
import uuid

from pydantic import BaseModel, Field

from api.service import ID_PATTERN, Service
from storyreel.db.notifications import DeliveryPublic
from storyreel.errors import NotFoundError
from storyreel.notify import NOTIFY_WORKFLOW_NAME, DeliveryResult, NotifyInput


class WebhookSecretView(BaseModel):
    """The caller's signing secret: verify deliveries with it (Standard Webhooks)."""

    key: str = Field(description="'whsec_' and the base64 of the HMAC-SHA256 key's bytes.")


class DeliveryView(DeliveryPublic):
    """One attempt at delivering an event of a run (or batch) to its webhook."""


class DeliveryList(BaseModel):
    webhook: str | None = Field(
        default=None, description="Where the run's events go (null: the run has no webhook)."
    )
    items: list[DeliveryView] = Field(description="Every attempt, oldest first.")


class RedeliveryAccepted(BaseModel):
    event_id: str = Field(description="The webhook-id the receiver gets again.")
    type: str = Field(description="The event's type, e.g. 'generation.completed'.")


class Notifications(Service):
    """The caller's webhook secret and deliveries; another user's run or batch is
    ``NotFoundError`` like one that does not exist."""

    async def secret(self, user_id: int) -> WebhookSecretView:
        key = await asyncio.to_thread(self.records.notifications.secret, user_id)
        return WebhookSecretView(key=key)

    async def rotate(self, user_id: int) -> WebhookSecretView:
        key = await asyncio.to_thread(self.records.notifications.rotate_secret, user_id)
        return WebhookSecretView(key=key)

    async def deliveries(
        self, user_id: int, *, generation_id: str | None = None, batch_id: str | None = None
    ) -> DeliveryList:
        await self._owned(user_id, generation_id, batch_id)
        notifications = self.records.notifications
        items = await asyncio.to_thread(
            notifications.deliveries, user_id, generation_id=generation_id, batch_id=batch_id
        )
        webhook = None
        if generation_id is not None:
            webhook = await asyncio.to_thread(
                notifications.generation_webhook, generation_id, user_id
            )
        return DeliveryList(
            webhook=webhook,
            items=[DeliveryView.model_validate(item.model_dump()) for item in items],
        )

    async def redeliver(
        self,
        user_id: int,
        delivery_id: str,
        *,
        generation_id: str | None = None,
        batch_id: str | None = None,
    ) -> RedeliveryAccepted:
        """Send the event that ``delivery_id`` tried to deliver again, under the same
        ``webhook-id`` (by a new delivery workflow, retried as the first was)."""
        await self._owned(user_id, generation_id, batch_id)
        notice: NotifyInput | None = None
        if ID_PATTERN.match(delivery_id):
            notice = await asyncio.to_thread(
                self.records.notifications.delivered_event,
                user_id,
                delivery_id,
                generation_id=generation_id,
                batch_id=batch_id,
            )
        if notice is None:
            raise NotFoundError(f"no delivery {delivery_id!r} of {generation_id or batch_id}")
        notice.retry_initial_seconds = self.settings.webhook_retry_initial_seconds
        await self.client.start_workflow(
            NOTIFY_WORKFLOW_NAME,
            notice,
            id=f"{notice.event_id}_again_{uuid.uuid4().hex[:12]}",
            task_queue=self.settings.workflow_task_queue,
            result_type=DeliveryResult,
            static_summary=f"{notice.type}, again",
        )
        return RedeliveryAccepted(event_id=notice.event_id, type=notice.type)

    async def _owned(self, user_id: int, generation_id: str | None, batch_id: str | None) -> None:
        subject = generation_id or batch_id or ""
        if not ID_PATTERN.match(subject):
            raise NotFoundError(f"no generation or batch {subject!r}")
        records = self.records
        found: object
        if generation_id is not None:
            found = await asyncio.to_thread(records.get_generation, generation_id, user_id)
        else:
            found = await asyncio.to_thread(records.get_batch, subject, user_id)
        if found is None:
            raise NotFoundError(f"no {'generation' if generation_id else 'batch'} {subject!r}")
