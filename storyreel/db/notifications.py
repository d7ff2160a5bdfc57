"""Outbound webhooks in the record: each user's signing secret, the events sent to their
targets and every attempt at delivering one. Reached as ``Records.notifications``.

The secret is kept as it is (not hashed): the sender needs it to sign. Events keep their
input, so a redelivery sends the very same event (same id, same body) again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import JSON, Text
from sqlmodel import Field, SQLModel, col, select

from storyreel.db.base import Sessions, upsert
from storyreel.db.models import Generation, UTCDateTime, utcnow
from storyreel.notify import NotifyInput, new_secret


class WebhookSecret(SQLModel, table=True):
    """A user's signing secret (``whsec_...``), made on first read, replaced by a rotation."""

    __tablename__: ClassVar[str] = "webhook_secrets"

    user_id: int = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    key: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookEventRow(SQLModel, table=True):
    """One event of a run or batch, as its delivery workflow was given it."""

    __tablename__: ClassVar[str] = "webhook_events"

    id: str = Field(primary_key=True, max_length=200)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    generation_id: str | None = Field(default=None, max_length=64, index=True)
    batch_id: str | None = Field(default=None, max_length=64, index=True)
    type: str = Field(max_length=64)
    notice: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookAttempt(SQLModel, table=True):
    """One attempt at delivering an event: the receiver's status code, or what went wrong."""

    __tablename__: ClassVar[str] = "webhook_attempts"

    delivery_id: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(
        max_length=200, foreign_key="webhook_events.id", ondelete="CASCADE", index=True
    )
    attempt: int
    status_code: int | None = None
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeliveryPublic(BaseModel):
    """One delivery attempt as the API lists it."""

    delivery_id: str
    event_id: str
    type: str
    attempt: int
    status_code: int | None = None
    error: str | None = None
    delivered: bool
    created_at: datetime


class Notifications(Sessions):
    """The webhook tables, over the record's engine."""

    # -- secrets -------------------------------------------------------------------------------

    def secret(self, user_id: int) -> str:
        """The user's signing secret, made now if they have none (concurrent first reads agree
        on one)."""
        with self._writing() as session:
            row = session.get(WebhookSecret, user_id)
            if row is not None:
                return row.key
            values = {"user_id": user_id, "key": new_secret(), "created_at": utcnow()}
            upsert(session.connection(), WebhookSecret, values, keys=["user_id"])
        with self._reading() as session:
            stored = session.get(WebhookSecret, user_id)
            assert stored is not None
            return stored.key

    def rotate_secret(self, user_id: int) -> str:
        """A new signing secret for the user; the old one signs nothing from now on."""
        key = new_secret()
        with self._writing() as session:
            row = session.get(WebhookSecret, user_id)
            if row is None:
                session.add(WebhookSecret(user_id=user_id, key=key))
            else:
                row.key, row.created_at = key, utcnow()
                session.add(row)
        return key

    # -- events and attempts -------------------------------------------------------------------

    def record_event(self, notice: NotifyInput) -> None:
        """Keep the event (once: a retry or redelivery of it changes nothing)."""
        values = {
            "id": notice.event_id,
            "user_id": notice.user_id,
            "generation_id": notice.generation_id,
            "batch_id": notice.batch_id,
            "type": notice.type,
            "notice": notice.model_dump(mode="json"),
            "created_at": utcnow(),
        }
        with self._writing() as session:
            upsert(session.connection(), WebhookEventRow, values, keys=["id"])

    def record_attempt(
        self,
        delivery_id: str,
        event_id: str,
        attempt: int,
        status_code: int | None,
        error: str | None,
    ) -> None:
        values = {
            "delivery_id": delivery_id,
            "event_id": event_id,
            "attempt": attempt,
            "status_code": status_code,
            "error": error,
            "created_at": utcnow(),
        }
        with self._writing() as session:
            upsert(session.connection(), WebhookAttempt, values, keys=["delivery_id"])

    def deliveries(
        self, user_id: int, *, generation_id: str | None = None, batch_id: str | None = None
    ) -> list[DeliveryPublic]:
        """Every attempt at the user's events of one run (or batch), oldest first."""
        query = (
            select(WebhookAttempt, WebhookEventRow)
            .join(WebhookEventRow, col(WebhookEventRow.id) == col(WebhookAttempt.event_id))
            .where(col(WebhookEventRow.user_id) == user_id)
            .order_by(col(WebhookAttempt.created_at), col(WebhookAttempt.delivery_id))
        )
        if generation_id is not None:
            query = query.where(col(WebhookEventRow.generation_id) == generation_id)
        if batch_id is not None:
            query = query.where(col(WebhookEventRow.batch_id) == batch_id)
        with self._reading() as session:
            return [
                DeliveryPublic(
                    delivery_id=attempt.delivery_id,
                    event_id=attempt.event_id,
                    type=event.type,
                    attempt=attempt.attempt,
                    status_code=attempt.status_code,
                    error=attempt.error,
                    delivered=attempt.status_code is not None and 200 <= attempt.status_code < 300,
                    created_at=attempt.created_at,
                )
                for attempt, event in session.exec(query).all()
            ]

    def delivered_event(
        self,
        user_id: int,
        delivery_id: str,
        *,
        generation_id: str | None = None,
        batch_id: str | None = None,
    ) -> NotifyInput | None:
        """The event an attempt delivered (or tried to), if it is the user's and of that run
        (or batch); None otherwise."""
        with self._reading() as session:
            found = session.exec(
                select(WebhookEventRow)
                .join(WebhookAttempt, col(WebhookAttempt.event_id) == col(WebhookEventRow.id))
                .where(
                    col(WebhookAttempt.delivery_id) == delivery_id,
                    col(WebhookEventRow.user_id) == user_id,
                )
            ).first()
        if found is None or (generation_id, batch_id) != (found.generation_id, found.batch_id):
            return None
        return NotifyInput.model_validate(found.notice)

    def generation_webhook(self, generation_id: str, user_id: int) -> str | None:
        """The webhook the user's run was asked for, if any (from its recorded request)."""
        with self._reading() as session:
            row = session.get(Generation, generation_id)
        if row is None or row.user_id != user_id:
            return None
        webhook = row.request.get("webhook")
        return str(webhook) if webhook else None
