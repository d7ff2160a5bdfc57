"""Engines for the record database, and the migrations that shape it.

SQLite (one file under the data directory) is the default, PostgreSQL (psycopg 3) is for
production. Both are used the same way: ``migrate(url)`` once at process start, then
``create_engine(url)`` for the process's lifetime.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Execution option that marks a connection about to write: on SQLite its transactions start
# with BEGIN IMMEDIATE (see ``_sqlite_pragmas``).
WRITE_OPTION = "storyreel_write"
# How long a SQLite writer waits for another one before giving up.
SQLITE_BUSY_SECONDS = 30.0
# Alembic keeps the running migration in module globals (alembic.context, alembic.op): two
# threads of one process must not migrate at the same time. Processes lock in the database.
_MIGRATING = threading.Lock()


def default_url(data_dir: Path) -> str:
    """The SQLite file used when no database URL is configured."""
    return f"sqlite:///{Path(data_dir).resolve() / 'storyreel.db'}"


def resolve_url(database_url: str | None, data_dir: Path) -> str:
    """The URL to use: the configured one (``postgresql://`` means psycopg 3), else SQLite."""
    if not database_url:
        return default_url(data_dir)
    url = make_url(database_url)
    # Compose files and hosted databases hand out plain postgres URLs; SQLAlchemy would pick
    # psycopg2 for them, which is not installed.
    if url.drivername in {"postgres", "postgresql"}:
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def create_engine(url: str, *, enforce_foreign_keys: bool = True) -> Engine:
    """An engine with the settings the repository relies on, for either backend.

    ``enforce_foreign_keys=False`` is for migrations only: SQLite alters a table by copying
    and dropping it, and dropping a parent table with enforcement on would cascade-delete
    its children (PostgreSQL ignores the flag: its ALTERs never cascade).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError(f"use a SQLite file, not {url!r}: records must outlive the process")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(
            parsed,
            # Pooled connections move between threads (API thread pool, activity executor).
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS},
        )
        _sqlite_pragmas(engine, enforce_foreign_keys=enforce_foreign_keys)
        return engine
    return sqlalchemy.create_engine(parsed, pool_pre_ping=True)


def _sqlite_pragmas(engine: Engine, *, enforce_foreign_keys: bool) -> None:
    foreign_keys = "ON" if enforce_foreign_keys else "OFF"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers (the API) never wait for the writer (the worker), and vice versa.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # Only outside a transaction does this pragma take effect: hence here, on connect.
            cursor.execute(f"PRAGMA foreign_keys={foreign_keys}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with "database is
        # locked" when another writer got in between; an IMMEDIATE one takes the write lock
        # first and waits its turn (busy timeout), which makes read-modify-write atomic.
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


def alembic_config(url: str) -> Config:
    """Alembic configuration for this package's migrations; no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser's interpolation character; passwords may contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema; a no-op when it is already there.

    Safe to call from several processes starting at once: migrations run under a lock
    (PostgreSQL advisory lock, SQLite write lock), and the later callers find nothing to do.
    """
    engine = create_engine(url, enforce_foreign_keys=False)
    try:
        with _MIGRATING, engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            if connection.in_transaction():
                connection.commit()
    finally:
        engine.dispose()
