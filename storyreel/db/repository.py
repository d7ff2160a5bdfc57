"""The record's operations: users and API keys, generations and clips, the cost ledger.

Every method is one short transaction and safe to call from several threads and processes
at once. Writes are idempotent, because their callers (Temporal activities) may run them
more than once and out of order.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, and_, case, delete, func, insert, or_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Executable
from sqlmodel import Session, SQLModel, col, select
from sqlmodel.sql.expression import SelectOfScalar

from storyreel.contracts import (
    GENERATION_ENDED,
    BatchStatus,
    ClaimResult,
    ClipState,
    ClipStatus,
    GenerationInput,
    GenerationRequest,
    GenerationState,
    GenerationStatus,
)
from storyreel.db.assets import Assets
from storyreel.db.engine import WRITE_OPTION, create_engine
from storyreel.db.models import (
    MICROS,
    ApiKey,
    Batch,
    BatchItem,
    BatchPublic,
    Clip,
    ClipProgress,
    CostEntry,
    CostTotal,
    Generation,
    GenerationPublic,
    User,
    UTCDateTime,
    utcnow,
)
from storyreel.errors import BadInputError, ConflictError, NotFoundError

API_KEY_PREFIX = "sr_"
# "sr_" and 8 characters of the random part: 48 of its 256 bits, shown, never enough to guess.
DISPLAY_PREFIX_LENGTH = 11
MAX_PAGE_SIZE = 100
Row = TypeVar("Row", Generation, Batch)
# The updated_at of a placeholder record (written before its run starts): older than any state
# the run will record, so the run's first write replaces it.
PLACEHOLDER_TIME = datetime(1970, 1, 1, tzinfo=UTC)
BATCH_ENDED_FIRST = "the batch ended before this generation started"


class BatchPage(BaseModel):
    """One page of a user's batches, newest first."""

    items: list[BatchPublic]
    next_cursor: str | None = None


class GenerationPage(BaseModel):
    """One page of a user's generations, newest first; ``next_cursor`` asks for the next."""

    items: list[GenerationPublic]
    next_cursor: str | None = None


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str, pepper: str) -> str:
    """The stored form of a key: HMAC-SHA256 under a server-side secret.

    Keys are 256 random bits, so a fast hash is enough (nothing to brute-force); the pepper
    makes a leaked table useless without the server's configuration as well.
    """
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


class Records:
    """The permanent record, over one engine (SQLite or PostgreSQL).

    Methods are synchronous: call them from sync activities (they run on the worker's
    executor) or from async code through a thread (``anyio.to_thread.run_sync``).
    """

    def __init__(self, engine: Engine, *, pepper: str = "") -> None:
        self.engine = engine
        self._pepper = pepper
        # Same pool; marks connections that will write (BEGIN IMMEDIATE on SQLite).
        self._writer = engine.execution_options(**{WRITE_OPTION: True})
        self.assets = Assets(engine, self._writer)

    @classmethod
    def from_url(cls, url: str, *, pepper: str = "") -> Records:
        return cls(create_engine(url), pepper=pepper)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    def _insert(
        self,
        model: type[SQLModel],
        values: Mapping[str, Any],
        *,
        keys: Sequence[str],
        on_conflict_set: Mapping[str, Any] | None = None,
    ) -> Executable:
        """INSERT ... ON CONFLICT (keys) DO NOTHING, or DO UPDATE SET ``on_conflict_set``."""
        changes = dict(on_conflict_set or {})
        if self.engine.dialect.name == "postgresql":
            pg = postgresql.insert(model).values(dict(values))
            if not changes:
                return pg.on_conflict_do_nothing(index_elements=list(keys))
            return pg.on_conflict_do_update(index_elements=list(keys), set_=changes)
        lite = sqlite.insert(model).values(dict(values))
        if not changes:
            return lite.on_conflict_do_nothing(index_elements=list(keys))
        return lite.on_conflict_do_update(index_elements=list(keys), set_=changes)

    def _insert_new(
        self,
        connection: Connection,
        model: type[SQLModel],
        values: Mapping[str, Any],
        *,
        keys: Sequence[str],
    ) -> bool:
        """Insert unless a row with the same ``keys`` exists; True if this call inserted it."""
        columns = sa_inspect(model).columns
        returning = [columns[key] for key in keys]
        if self.engine.dialect.name == "postgresql":
            statement: Executable = (
                postgresql.insert(model)
                .values(dict(values))
                .on_conflict_do_nothing(index_elements=list(keys))
                .returning(*returning)
            )
        else:
            statement = (
                sqlite.insert(model)
                .values(dict(values))
                .on_conflict_do_nothing(index_elements=list(keys))
                .returning(*returning)
            )
        # RETURNING rather than rowcount, which psycopg leaves at -1 for this statement.
        return connection.execute(statement).first() is not None

    # -----------------------------------------------------------------------------------------
    # Users and API keys

    def create_user(self, name: str) -> User:
        """The user called ``name``, created on first use."""
        name = name.strip()
        if not name or len(name) > 100:
            raise BadInputError("a user name is 1-100 characters")
        with self._writing() as session:
            session.connection().execute(
                self._insert(User, {"name": name, "created_at": utcnow()}, keys=["name"])
            )
            return session.exec(select(User).where(col(User.name) == name)).one()

    def create_api_key(self, user: User | int) -> str:
        """A new key for ``user``. The clear key is returned here once and stored nowhere."""
        user_id = _user_id(user)
        key = new_api_key()
        try:
            with self._writing() as session:
                session.connection().execute(
                    insert(ApiKey).values(
                        user_id=user_id,
                        key_hash=hash_api_key(key, self._pepper),
                        prefix=key[:DISPLAY_PREFIX_LENGTH],
                        created_at=utcnow(),
                    )
                )
        except IntegrityError as exc:
            raise NotFoundError(f"no user with id {user_id}") from exc
        return key

    def user_for_key(self, key: str) -> User | None:
        """The owner of a valid, unrevoked key; None for anything else."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
            return None
        # A lookup by the hash itself: nothing secret is compared byte by byte here.
        query = (
            select(User)
            .join(ApiKey, col(ApiKey.user_id) == col(User.id))
            .where(
                col(ApiKey.key_hash) == hash_api_key(key, self._pepper),
                col(ApiKey.revoked_at).is_(None),
            )
        )
        with self._reading() as session:
            return session.exec(query).first()

    def key_id_for(self, key: str) -> int | None:
        """The id of a valid, unrevoked key (what a browser session refers to); else None."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
            return None
        query = select(ApiKey.id).where(
            col(ApiKey.key_hash) == hash_api_key(key, self._pepper),
            col(ApiKey.revoked_at).is_(None),
        )
        with self._reading() as session:
            return session.exec(query).first()

    def user_for_key_id(self, key_id: int) -> User | None:
        """The owner of the key with this id while it is unrevoked: revoking a key ends the
        browser sessions made from it."""
        query = (
            select(User)
            .join(ApiKey, col(ApiKey.user_id) == col(User.id))
            .where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
        )
        with self._reading() as session:
            return session.exec(query).first()

    # -----------------------------------------------------------------------------------------
    # Generations

    def upsert_generation(
        self, state: GenerationState, *, user_id: int, request: Mapping[str, Any]
    ) -> bool:
        """Record ``state``; False if the row already holds a newer one.

        ``request`` (the caller's GenerationRequest as JSON) is kept from the first write.
        Idempotent: the same state twice writes the same row twice. Out of order: a state whose
        ``updated_at`` is older than the stored one is ignored, so a late retry of an earlier
        milestone cannot undo a later one. Clips are rewritten with the generation, so the
        clip rows are always those of the state the generation row holds.
        """
        values = _generation_values(state)
        try:
            with self._writing() as session:
                connection = session.connection()
                inserted = self._insert_new(
                    connection,
                    Generation,
                    {
                        "id": state.generation_id,
                        "user_id": user_id,
                        "request": dict(request),
                        **values,
                    },
                    keys=["id"],
                )
                if not inserted:
                    # FOR UPDATE: on PostgreSQL, concurrent writers of one generation compare
                    # and write one after the other (SQLite already holds the write lock).
                    stored = connection.execute(
                        select(col(Generation.user_id), col(Generation.updated_at))
                        .where(col(Generation.id) == state.generation_id)
                        .with_for_update()
                    ).one()
                    if stored.user_id != user_id:
                        raise ConflictError(
                            f"generation {state.generation_id} belongs to another user"
                        )
                    if _is_stale(state.updated_at, stored.updated_at):
                        return False
                    if state.created_at is None:
                        values.pop("created_at")
                    connection.execute(
                        update(Generation)
                        .where(col(Generation.id) == state.generation_id)
                        .values(values)
                    )
                self._write_clips(connection, state)
        except IntegrityError as exc:
            raise NotFoundError(f"no user with id {user_id}") from exc
        return True

    def _write_clips(self, connection: Connection, state: GenerationState) -> None:
        rows = [_clip_values(state.generation_id, clip) for clip in state.clips]
        if rows:
            if self.engine.dialect.name == "postgresql":
                pg = postgresql.insert(Clip).values(rows)
                connection.execute(
                    pg.on_conflict_do_update(
                        index_elements=["generation_id", "clip_id"],
                        set_={name: pg.excluded[name] for name in _CLIP_UPDATED},
                    )
                )
            else:
                lite = sqlite.insert(Clip).values(rows)
                connection.execute(
                    lite.on_conflict_do_update(
                        index_elements=["generation_id", "clip_id"],
                        set_={name: lite.excluded[name] for name in _CLIP_UPDATED},
                    )
                )
        # A state never loses clips in practice; if one did, the record follows it exactly.
        connection.execute(
            delete(Clip).where(
                col(Clip.generation_id) == state.generation_id,
                col(Clip.clip_id).not_in([clip.clip_id for clip in state.clips]),
            )
        )

    def get_generation(self, generation_id: str, user_id: int) -> GenerationState | None:
        """The recorded state; None if there is none or it is another user's."""
        with self._reading() as session:
            row = session.get(Generation, generation_id)
            if row is None:
                return _waiting_batch_item(session, generation_id, user_id)
            if row.user_id != user_id:
                return None
            clips = session.exec(
                select(Clip)
                .where(col(Clip.generation_id) == generation_id)
                .order_by(col(Clip.clip_id))
            ).all()
            return _state_from_rows(row, clips)

    def list_generations(
        self,
        user_id: int,
        *,
        status: GenerationStatus | Collection[GenerationStatus] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> GenerationPage:
        """The user's generations, newest first, ``limit`` at a time."""
        query = select(Generation).where(col(Generation.user_id) == user_id)
        if status is not None:
            wanted = [status] if isinstance(status, GenerationStatus) else list(status)
            query = query.where(col(Generation.status).in_([s.value for s in wanted]))
        rows, next_cursor = self._newest_first(query, Generation, limit, cursor)
        items = [GenerationPublic.model_validate(row) for row in rows]
        return GenerationPage(items=items, next_cursor=next_cursor)

    def count_running(self, user_id: int) -> int:
        """How many of the user's generations have not ended (for per-user quotas)."""
        query = (
            select(func.count())
            .select_from(Generation)
            .where(
                col(Generation.user_id) == user_id,
                col(Generation.status).not_in([s.value for s in GENERATION_ENDED]),
            )
        )
        with self._reading() as session:
            return int(session.exec(query).one())

    # -----------------------------------------------------------------------------------------
    # Batches

    def create_batch(
        self,
        batch_id: str,
        user_id: int,
        title: str,
        items: Sequence[GenerationInput],
        generation_ids: Sequence[str],
    ) -> BatchPublic:
        """Record a new batch (status running) with each item's prepared input."""
        now = utcnow()
        row = Batch(
            id=batch_id,
            user_id=user_id,
            title=title,
            status=BatchStatus.running,
            total=len(items),
            created_at=now,
            updated_at=now,
        )
        try:
            with self._writing() as session:
                session.add(row)
                session.flush()
                session.add_all(
                    BatchItem(
                        batch_id=batch_id,
                        position=position,
                        generation_id=generation_id,
                        input=item.model_dump(mode="json"),
                    )
                    for position, (item, generation_id) in enumerate(
                        zip(items, generation_ids, strict=True)
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(f"batch {batch_id} or one of its generation ids exists") from exc
        return BatchPublic.model_validate(row)

    def get_batch(self, batch_id: str, user_id: int) -> BatchPublic | None:
        """The batch; None if there is none or it is another user's."""
        with self._reading() as session:
            row = session.get(Batch, batch_id)
            if row is None or row.user_id != user_id:
                return None
            return BatchPublic.model_validate(row)

    def batch_generations(self, batch_id: str) -> list[tuple[str, GenerationStatus | None]]:
        """Each item's generation id, in order, with its recorded status (None: no record yet)."""
        query = (
            select(col(BatchItem.generation_id), col(Generation.status))
            .select_from(BatchItem)
            .outerjoin(Generation, col(Generation.id) == col(BatchItem.generation_id))
            .where(col(BatchItem.batch_id) == batch_id)
            .order_by(col(BatchItem.position))
        )
        with self._reading() as session:
            rows = session.exec(query).all()
        return [(gid, GenerationStatus(status) if status else None) for gid, status in rows]

    def list_batches(
        self, user_id: int, *, limit: int = 20, cursor: str | None = None
    ) -> BatchPage:
        """The user's batches, newest first, paged like generations."""
        query = select(Batch).where(col(Batch.user_id) == user_id)
        rows, next_cursor = self._newest_first(query, Batch, limit, cursor)
        return BatchPage(
            items=[BatchPublic.model_validate(row) for row in rows], next_cursor=next_cursor
        )

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

    def claim_batch_item(
        self, batch_id: str, position: int, user_id: int, max_running: int
    ) -> ClaimResult:
        """The item's prepared input, its placeholder record written, if the user may start one
        more generation now; else a result without ``request``. One write transaction, so two
        claimers never both take the user's last slot. Idempotent: an item already claimed is
        handed out again without being counted twice."""
        with self._writing() as session:
            item = session.get(BatchItem, (batch_id, position))
            if item is None:
                raise NotFoundError(f"batch {batch_id} has no item {position}")
            request = GenerationInput.model_validate(item.input)
            claimed = ClaimResult(generation_id=item.generation_id, request=request)
            if session.get(Generation, item.generation_id) is not None:
                return claimed
            running = session.exec(
                select(func.count())
                .select_from(Generation)
                .where(
                    col(Generation.user_id) == user_id,
                    col(Generation.status).not_in([s.value for s in GENERATION_ENDED]),
                )
            ).one()
            if running >= max_running:
                return ClaimResult(generation_id=item.generation_id)
            self._write_placeholder(session, item, request, user_id, GenerationStatus.queued)
            return claimed

    def close_batch(self, batch_id: str, status: BatchStatus) -> None:
        """Write the batch's final status. Items that never started (none, or only a
        placeholder, when the batch was cancelled) are recorded as cancelled generations, so
        every id the batch listed answers and none counts as running."""
        with self._writing() as session:
            batch = session.get(Batch, batch_id)
            if batch is None:
                raise NotFoundError(f"no batch {batch_id}")
            items = session.exec(select(BatchItem).where(col(BatchItem.batch_id) == batch_id))
            for item in items:
                row = session.get(Generation, item.generation_id)
                if row is not None and not (
                    row.status == GenerationStatus.queued
                    and row.updated_at is not None
                    and _as_utc(row.updated_at) == PLACEHOLDER_TIME
                ):
                    continue
                request = GenerationInput.model_validate(item.input)
                if row is not None:
                    row.status, row.updated_at = GenerationStatus.cancelled, utcnow()
                    row.error = BATCH_ENDED_FIRST
                    session.add(row)
                    continue
                self._write_placeholder(
                    session, item, request, batch.user_id, GenerationStatus.cancelled
                )
            batch.status, batch.updated_at = status, utcnow()
            session.add(batch)

    def _write_placeholder(
        self,
        session: Session,
        item: BatchItem,
        request: GenerationInput,
        user_id: int,
        status: GenerationStatus,
    ) -> None:
        error = None if status is GenerationStatus.queued else BATCH_ENDED_FIRST
        state = placeholder_state(item.generation_id, request, status=status, error=error)
        public = request.model_dump(mode="json", include=set(GenerationRequest.model_fields))
        session.connection().execute(
            self._insert(
                Generation,
                {
                    "id": item.generation_id,
                    "user_id": user_id,
                    "request": public,
                    **_generation_values(state),
                },
                keys=["id"],
            )
        )

    # -----------------------------------------------------------------------------------------
    # Live progress of clips whose provider calls back

    def set_clip_progress(
        self,
        generation_id: str,
        clip_id: int,
        prediction_id: str,
        status: ClipStatus,
        progress: float,
    ) -> None:
        """Note a clip's progress from a webhook; a prediction's progress never goes back."""
        values = {
            "generation_id": generation_id,
            "clip_id": clip_id,
            "prediction_id": prediction_id,
            "status": status.value,
            "progress": progress,
            "updated_at": utcnow(),
        }
        table = ClipProgress.__table__  # type: ignore[attr-defined]
        with self._writing() as session:
            connection = session.connection()
            dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
            statement = dialect.insert(table).values(values)
            same = table.c.prediction_id == statement.excluded.prediction_id
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["generation_id", "clip_id"],
                    set_={
                        "prediction_id": statement.excluded.prediction_id,
                        "status": statement.excluded.status,
                        # A new prediction starts over; the same one only moves forward.
                        "progress": case(
                            (
                                and_(same, table.c.progress > statement.excluded.progress),
                                table.c.progress,
                            ),
                            else_=statement.excluded.progress,
                        ),
                        "updated_at": statement.excluded.updated_at,
                    },
                )
            )

    def clip_progress(self, generation_id: str) -> list[ClipProgress]:
        with self._reading() as session:
            return list(
                session.exec(
                    select(ClipProgress).where(col(ClipProgress.generation_id) == generation_id)
                ).all()
            )

    # -----------------------------------------------------------------------------------------
    # Cost ledger

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
                entered = self._insert_new(connection, CostEntry, entry, keys=["idempotency_key"])
                if not entered:
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
                connection.execute(
                    self._insert(
                        CostTotal,
                        {
                            "user_id": user_id,
                            "total_micros": micros,
                            "entries": 1,
                            "updated_at": now,
                        },
                        keys=["user_id"],
                        on_conflict_set={
                            "total_micros": col(CostTotal.total_micros) + micros,
                            "entries": col(CostTotal.entries) + 1,
                            "updated_at": now,
                        },
                    )
                )
        except IntegrityError as exc:
            raise NotFoundError(f"no user with id {user_id}") from exc
        return True


# ---------------------------------------------------------------------------------------------
# Rows <-> contracts: a column holds the contract's field of the same name, so the mapping is
# derived from the table and the contract (tests/db checks that no field goes unrecorded).
_GENERATION_COLUMNS = Generation.__table__.columns  # type: ignore[attr-defined]
_CLIP_COLUMNS = Clip.__table__.columns  # type: ignore[attr-defined]
_GENERATION_FIELDS = frozenset(GenerationState.model_fields) & set(_GENERATION_COLUMNS.keys())
_CLIP_FIELDS = frozenset(ClipState.model_fields) & set(_CLIP_COLUMNS.keys())
# Timestamps are bound as datetimes (UTCDateTime), not as the JSON dump's strings.
_GENERATION_MOMENTS = _GENERATION_FIELDS & {
    column.name for column in _GENERATION_COLUMNS if isinstance(column.type, UTCDateTime)
}
_CLIP_MOMENTS = _CLIP_FIELDS & {
    column.name for column in _CLIP_COLUMNS if isinstance(column.type, UTCDateTime)
}
# What a clip's upsert rewrites: every column but the key.
_CLIP_UPDATED = tuple(column.name for column in _CLIP_COLUMNS if not column.primary_key)


def placeholder_state(
    generation_id: str,
    request: GenerationRequest,
    *,
    status: GenerationStatus = GenerationStatus.queued,
    error: str | None = None,
) -> GenerationState:
    """The record of a run not started yet: written before its workflow starts, so the run is
    listed and owned from the start; a queued one is replaced by the run's first write."""
    now = utcnow()
    return GenerationState(
        generation_id=generation_id,
        title=request.title,
        status=status,
        platform=request.platform,
        provider=request.provider,
        budget=request.budget,
        created_at=now,
        updated_at=PLACEHOLDER_TIME if status is GenerationStatus.queued else now,
        error=error,
    )


def _waiting_batch_item(
    session: Session, generation_id: str, user_id: int
) -> GenerationState | None:
    """A batch lists every generation id at once, but an item's record is written when its turn
    comes: until then the id answers as the user's queued generation (or as nothing)."""
    item = session.exec(
        select(BatchItem)
        .join(Batch, col(Batch.id) == col(BatchItem.batch_id))
        .where(col(BatchItem.generation_id) == generation_id, col(Batch.user_id) == user_id)
    ).first()
    if item is None:
        return None
    return placeholder_state(generation_id, GenerationInput.model_validate(item.input))


def _user_id(user: User | int) -> int:
    if isinstance(user, User):
        if user.id is None:
            raise BadInputError("the user has not been saved")
        return user.id
    return user


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _is_stale(incoming: datetime | None, stored: datetime | None) -> bool:
    # A state without a timestamp cannot prove it is newer than one with a timestamp.
    if incoming is None:
        return stored is not None
    return stored is not None and _as_utc(incoming) < _as_utc(stored)


def _generation_values(state: GenerationState) -> dict[str, Any]:
    values = state.model_dump(mode="json", include=set(_GENERATION_FIELDS))
    values.update({name: getattr(state, name) for name in _GENERATION_MOMENTS})
    values["created_at"] = state.created_at or utcnow()
    values["recorded_at"] = utcnow()
    return values


def _clip_values(generation_id: str, clip: ClipState) -> dict[str, Any]:
    values = clip.model_dump(mode="json", include=set(_CLIP_FIELDS))
    values.update({name: getattr(clip, name) for name in _CLIP_MOMENTS})
    values["generation_id"] = generation_id
    values["cached"] = clip.status is ClipStatus.cached
    return values


def _state_from_rows(row: Generation, clips: Sequence[Clip]) -> GenerationState:
    return GenerationState.model_validate(
        {
            **{name: getattr(row, name) for name in _GENERATION_FIELDS},
            "generation_id": row.id,
            "clips": [ClipState.model_validate(clip, from_attributes=True) for clip in clips],
        }
    )


def _encode_cursor(created_at: datetime, generation_id: str) -> str:
    raw = json.dumps([_as_utc(created_at).isoformat(), generation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, generation_id = json.loads(raw)
        return _as_utc(datetime.fromisoformat(created)), str(generation_id)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadInputError("invalid cursor: pass back the next_cursor of a previous page") from exc
