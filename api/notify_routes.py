"""Outbound webhook routes: the caller's signing secret (``/v1/webhooks/secret``) and the
delivery attempts of a run or batch (``.../deliveries``), each of which can be sent again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.auth import UserDep, owner_id
from api.deps import NotificationsDep
from api.notify import DeliveryList, RedeliveryAccepted, WebhookSecretView
from api.responses import answers

secrets = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
deliveries = APIRouter(tags=["webhooks"])

SubjectId = Annotated[str, Path(description="The generation (or batch) id.", max_length=200)]
DeliveryId = Annotated[str, Path(description="A delivery id from the list.", max_length=100)]
NOT_FOUND = "No such generation (or batch), or not yours."
REDELIVER_NOT_FOUND = "No such generation (or batch), or no such delivery of it."
# What the list and redeliver routes of a run and of a batch have in common.
LISTING: dict[str, Any] = {
    "response_model": DeliveryList,
    "responses": answers({404: NOT_FOUND}),
}
REDELIVERY: dict[str, Any] = {
    "status_code": 202,
    "response_model": RedeliveryAccepted,
    "responses": answers({404: REDELIVER_NOT_FOUND}),
}


@secrets.get("/secret", response_model=WebhookSecretView)
async def get_webhook_secret(user: UserDep, notifications: NotificationsDep) -> WebhookSecretView:
    """Your signing secret (made on first read). Every event sent to your runs' ``webhook``
    carries ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64
    HMAC-SHA256 of "{id}.{timestamp}.{body}">`` under it (Standard Webhooks): verify with
    ``standardwebhooks.Webhook(key).verify(body, headers)``."""
    return await notifications.secret(owner_id(user))


@secrets.post("/secret/rotate", response_model=WebhookSecretView)
async def rotate_webhook_secret(
    user: UserDep, notifications: NotificationsDep
) -> WebhookSecretView:
    """Replace your signing secret: every attempt from now on is signed with the new one,
    retries of earlier events included."""
    return await notifications.rotate(owner_id(user))


@deliveries.get("/v1/generations/{generation_id}/deliveries", **LISTING)
async def list_generation_deliveries(
    generation_id: SubjectId, user: UserDep, notifications: NotificationsDep
) -> DeliveryList:
    """Every attempt at delivering the run's events to its ``webhook``: event type, attempt,
    the receiver's status code or what went wrong, and when."""
    return await notifications.deliveries(owner_id(user), generation_id=generation_id)


@deliveries.post("/v1/generations/{generation_id}/deliveries/{delivery_id}/redeliver", **REDELIVERY)
async def redeliver_generation_event(
    generation_id: SubjectId,
    delivery_id: DeliveryId,
    user: UserDep,
    notifications: NotificationsDep,
) -> RedeliveryAccepted:
    """Send the event of that delivery again, with the same ``webhook-id`` (receivers that
    keep ids see a duplicate), retried like the first for up to a day."""
    return await notifications.redeliver(owner_id(user), delivery_id, generation_id=generation_id)


@deliveries.get("/v1/batches/{batch_id}/deliveries", **LISTING)
async def list_batch_deliveries(
    batch_id: SubjectId, user: UserDep, notifications: NotificationsDep
) -> DeliveryList:
    """Every attempt at delivering the batch's end to its ``webhook``."""
    return await notifications.deliveries(owner_id(user), batch_id=batch_id)


@deliveries.post("/v1/batches/{batch_id}/deliveries/{delivery_id}/redeliver", **REDELIVERY)
async def redeliver_batch_event(
    batch_id: SubjectId, delivery_id: DeliveryId, user: UserDep, notifications: NotificationsDep
) -> RedeliveryAccepted:
    """Send the batch's event of that delivery again, with the same ``webhook-id``."""
    return await notifications.redeliver(owner_id(user), delivery_id, batch_id=batch_id)
