"""The permanent record: SQLModel tables, Alembic migrations and the operations on them.

Temporal holds a generation while it runs; this database keeps it after Temporal's retention
has expired. Start-up calls ``migrate(url)``; everything else goes through ``Records``.
"""

from storyreel.db.engine import create_engine, default_url, migrate, resolve_url
from storyreel.db.repository import (
    BatchPage,
    GenerationPage,
    Records,
    hash_api_key,
    placeholder_state,
)
from storyreel.settings import Settings


def open_records(settings: Settings) -> Records:
    """The configured record database, migrated to the current schema.

    Every role calls this on start; migrating from several processes at once is safe.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = resolve_url(settings.database_url, settings.data_dir)
    migrate(url)
    return Records.from_url(url, pepper=settings.api_key_pepper.get_secret_value())


__all__ = [
    "BatchPage",
    "GenerationPage",
    "Records",
    "create_engine",
    "default_url",
    "hash_api_key",
    "migrate",
    "open_records",
    "placeholder_state",
    "resolve_url",
]
