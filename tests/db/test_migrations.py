"""Migrations: they build the schema the models declare, once, whoever runs them."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from storyreel.db import create_engine, migrate
from storyreel.db.engine import MIGRATIONS_DIR, alembic_config, resolve_url

TABLES = {
    "users", "api_keys", "generations", "clips", "cost_ledger", "cost_totals", "batches",
    "batch_items", "clip_progress",
}  # fmt: skip


def _head() -> str:
    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None
    return head


def _version(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def test_migrations_build_the_schema_on_an_empty_database(db_url: str) -> None:
    assert _version(db_url) is None
    migrate(db_url)
    assert _version(db_url) == _head()
    engine = create_engine(db_url)
    try:
        assert TABLES <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrating_twice_changes_nothing(db_url: str) -> None:
    migrate(db_url)
    migrate(db_url)
    assert _version(db_url) == _head()


def test_the_migrations_match_the_models(db_url: str) -> None:
    """What autogenerate would write next is empty: no model change lacks its migration."""
    migrate(db_url)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert compare_metadata(context, SQLModel.metadata) == []
    finally:
        engine.dispose()


def test_processes_starting_together_migrate_once(db_url: str) -> None:
    """An API and some workers starting at once against a new database."""
    code = "import sys; from storyreel.db import migrate; migrate(sys.argv[1])"
    starts = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for process in starts:
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 0, errors.decode()
    assert _version(db_url) == _head()


def test_threads_of_one_process_may_migrate_together(db_url: str) -> None:
    with ThreadPoolExecutor(4) as pool:
        for done in [pool.submit(migrate, db_url) for _ in range(4)]:
            done.result(timeout=60)
    assert _version(db_url) == _head()


def test_downgrade_then_upgrade(db_url: str) -> None:
    migrate(db_url)
    command.downgrade(alembic_config(db_url), "base")
    assert _version(db_url) is None
    migrate(db_url)
    assert _version(db_url) == _head()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


def test_database_urls(tmp_path) -> None:
    assert resolve_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'storyreel.db'}"
    assert resolve_url("", tmp_path).startswith("sqlite:///")
    assert (
        resolve_url("postgresql://u:p%40ss@db:5432/storyreel", tmp_path)
        == "postgresql+psycopg://u:p%40ss@db:5432/storyreel"
    )
    assert resolve_url("postgres://db/x", tmp_path) == "postgresql+psycopg://db/x"
    assert resolve_url("sqlite:////srv/r.db", tmp_path) == "sqlite:////srv/r.db"


def test_sqlite_in_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="SQLite file"):
        create_engine("sqlite://")
