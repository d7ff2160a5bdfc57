"""What every part of the record shares: sessions over one engine, the one upsert, paging.

Each aggregate (accounts, generations, batches, clip progress, ledger) is a mixin over
``RecordsBase`` in its own module; ``storyreel.db.repository.Records`` composes them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, Engine, and_, func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storyreel.contracts import GENERATION_ENDED
from storyreel.db.engine import WRITE_OPTION
from storyreel.db.models import Batch, Generation
from storyreel.errors import BadInputError

MAX_PAGE_SIZE = 100
Row = TypeVar("Row", Generation, Batch)
# The proposed row of an upsert (``EXCLUDED`` in SQL): what an ON CONFLICT update reads.
Excluded = ReadOnlyColumnCollection[str, ColumnElement[Any]]
OnConflict = Mapping[str, Any] | Callable[[Excluded], Mapping[str, Any]]


class Sessions:
    """One engine (SQLite or PostgreSQL) and its reading and writing sessions: what every
    table group of the record (the aggregates, assets, notifications) stands on."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Same pool; marks connections that will write (BEGIN IMMEDIATE on SQLite).
        self._writer = engine.execution_options(**{WRITE_OPTION: True})

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session


class RecordsBase(Sessions):
    """The aggregates' base: sessions, the pepper API keys are hashed with, paging."""

    def __init__(self, engine: Engine, *, pepper: str = "") -> None:
        super().__init__(engine)
        self._pepper = pepper

    def dispose(self) -> None:
        self.engine.dispose()

    def _newest_first(
        self,
        query: SelectOfScalar[Row],
        table: type[Generation] | type[Batch],
        limit: int,
        cursor: str | None,
    ) -> tuple[Sequence[Row], str | None]:
        """One page of ``query``'s rows, newest first, and the cursor of the next page.

        Pages are cut by (created_at, id) rather than by offset, so rows arriving while a
        client pages through neither repeat nor go missing.
        """
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise BadInputError(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        if cursor is not None:
            after_created, after_id = _decode_cursor(cursor)
            query = query.where(
                or_(
                    col(table.created_at) < after_created,
                    and_(col(table.created_at) == after_created, col(table.id) < after_id),
                )
            )
        query = query.order_by(col(table.created_at).desc(), col(table.id).desc())
        with self._reading() as session:
            rows = session.exec(query.limit(limit + 1)).all()
        if len(rows) <= limit:
            return rows, None
        last = rows[limit - 1]
        return rows[:limit], _encode_cursor(last.created_at, last.id)


def upsert(
    connection: Connection,
    model: type[SQLModel],
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    on_conflict: OnConflict | None = None,
) -> bool:
    """INSERT ``values`` (one row or several) ... ON CONFLICT (``keys``): DO NOTHING, or DO
    UPDATE SET ``on_conflict`` (a mapping, or a function of the proposed row, ``EXCLUDED``).

    The one place the PostgreSQL and SQLite dialects differ: both spell ON CONFLICT the same,
    but SQLAlchemy builds it from each dialect's own ``insert``. True if a row was written
    (inserted, or updated by ``on_conflict``); with DO NOTHING, True means this call inserted.
    """
    table = model.__table__  # type: ignore[attr-defined]
    rows = dict(values) if isinstance(values, Mapping) else [dict(row) for row in values]
    if connection.dialect.name == "postgresql":
        statement: postgresql.Insert | sqlite.Insert = postgresql.insert(table).values(rows)
    else:
        statement = sqlite.insert(table).values(rows)
    changes = on_conflict(statement.excluded) if callable(on_conflict) else on_conflict
    if changes:
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    # RETURNING rather than rowcount, which psycopg leaves at -1 for this statement.
    returned = connection.execute(statement.returning(*(table.c[key] for key in keys)))
    return returned.first() is not None


def running_count(user_id: int) -> SelectOfScalar[int]:
    """How many of the user's generations have not ended: the per-user quota's one query."""
    return (
        select(func.count())
        .select_from(Generation)
        .where(
            col(Generation.user_id) == user_id,
            col(Generation.status).not_in([s.value for s in GENERATION_ENDED]),
        )
    )


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([as_utc(created_at).isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return as_utc(datetime.fromisoformat(created)), str(row_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadInputError("invalid cursor: pass back the next_cursor of a previous page") from exc
