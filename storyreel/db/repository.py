"""The record's operations, one mixin per aggregate, composed into ``Records``.

Every method is one short transaction and safe to call from several threads and processes
at once. Writes are idempotent, because their callers (Temporal activities) may run them
more than once and out of order.

Where each aggregate lives: users and API keys ``accounts``, generations and their clips
``generations``, batches ``batches``, live clip progress ``progress``, the cost ledger
``ledger``; what they share (sessions, the one dialect-aware ``upsert``, the one running-count
query, paging) ``base``; rows <-> contracts ``rows``.
"""

from __future__ import annotations

from sqlalchemy import Engine

from storyreel.db.accounts import (
    API_KEY_PREFIX,
    DISPLAY_PREFIX_LENGTH,
    AccountRecords,
    hash_api_key,
    new_api_key,
)
from storyreel.db.assets import Assets
from storyreel.db.base import MAX_PAGE_SIZE
from storyreel.db.batches import BATCH_ENDED_FIRST, BatchPage, BatchRecords
from storyreel.db.engine import create_engine
from storyreel.db.generations import GenerationPage, GenerationRecords
from storyreel.db.ledger import LedgerRecords
from storyreel.db.notifications import Notifications
from storyreel.db.progress import ProgressRecords
from storyreel.db.rows import PLACEHOLDER_TIME, placeholder_state


class Records(AccountRecords, GenerationRecords, BatchRecords, ProgressRecords, LedgerRecords):
    """The permanent record, over one engine (SQLite or PostgreSQL).

    Methods are synchronous: call them from sync activities (they run on the worker's
    executor) or from async code through a thread (``anyio.to_thread.run_sync``).
    """

    def __init__(self, engine: Engine, *, pepper: str = "") -> None:
        super().__init__(engine, pepper=pepper)
        self.assets = Assets(engine)
        self.notifications = Notifications(engine)

    @classmethod
    def from_url(cls, url: str, *, pepper: str = "") -> Records:
        return cls(create_engine(url), pepper=pepper)


__all__ = [
    "API_KEY_PREFIX",
    "BATCH_ENDED_FIRST",
    "DISPLAY_PREFIX_LENGTH",
    "MAX_PAGE_SIZE",
    "PLACEHOLDER_TIME",
    "BatchPage",
    "GenerationPage",
    "Records",
    "hash_api_key",
    "new_api_key",
    "placeholder_state",
]
