"""The cost ledger: every charge entered once, and each user's running total beside it."""

from __future__ import annotations

import math

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from storyreel.db.base import RecordsBase, upsert
from storyreel.db.models import MICROS, CostEntry, CostTotal, utcnow
from storyreel.errors import BadInputError, ConflictError, NotFoundError


class LedgerRecords(RecordsBase):
    """Charges and totals, in integer micro-units."""

    def record_cost(
        self,
        user_id: int,
        generation_id: str,
        clip_id: int | None,
        amount: float,
        idempotency_key: str,
        billed_seconds: float | None = None,
    ) -> bool:
        """Enter a charge once; False if ``idempotency_key`` was already entered.

        The entry and the user's running total move in one transaction: the total is always
        the sum of the entries, whoever else is writing. ``billed_seconds`` is the clip length
        the provider billed for it (a clip's charge). A repeat must carry the same user and
        amount; its billed seconds are not compared (a write sent before they were recorded
        may be repeated by a worker that records them).
        """
        if not math.isfinite(amount):
            raise BadInputError(f"a cost must be a finite number, not {amount}")
        if not idempotency_key or len(idempotency_key) > 200:
            raise BadInputError("an idempotency key is 1-200 characters")
        if billed_seconds is not None and not (
            math.isfinite(billed_seconds) and billed_seconds >= 0
        ):
            raise BadInputError(f"billed seconds are a finite length, not {billed_seconds}")
        micros = round(amount * MICROS)
        now = utcnow()
        try:
            with self._writing() as session:
                connection = session.connection()
                entry = {
                    "idempotency_key": idempotency_key,
                    "user_id": user_id,
                    "generation_id": generation_id,
                    "clip_id": clip_id,
                    "amount_micros": micros,
                    "billed_seconds": billed_seconds,
                    "created_at": now,
                }
                if not upsert(connection, CostEntry, entry, keys=["idempotency_key"]):
                    first = connection.execute(
                        select(col(CostEntry.user_id), col(CostEntry.amount_micros)).where(
                            col(CostEntry.idempotency_key) == idempotency_key
                        )
                    ).one()
                    if (first.user_id, first.amount_micros) != (user_id, micros):
                        raise ConflictError(
                            f"cost {idempotency_key!r} was already entered with other values"
                        )
                    return False
                # total = total + amount in the database, never read-add-write in Python.
                total = {"user_id": user_id, "total_micros": micros, "entries": 1}
                upsert(
                    connection,
                    CostTotal,
                    {**total, "updated_at": now},
                    keys=["user_id"],
                    on_conflict={
                        "total_micros": col(CostTotal.total_micros) + micros,
                        "entries": col(CostTotal.entries) + 1,
                        "updated_at": now,
                    },
                )
        except IntegrityError as exc:
            raise NotFoundError(f"no user with id {user_id}") from exc
        return True
