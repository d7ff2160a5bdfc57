"""Alembic environment: the target schema is ``SQLModel.metadata`` (storyreel.db.models).

Run programmatically by ``storyreel.db.migrate(url)``, which hands over its connection, or
from the command line for new revisions::

    alembic -c storyreel/db/alembic.ini -x url=sqlite:///scratch.db upgrade head
    alembic -c storyreel/db/alembic.ini -x url=sqlite:///scratch.db revision --autogenerate -m "..."
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, text
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from storyreel.db.engine import create_engine, resolve_url
from storyreel.db.models import UTCDateTime
from storyreel.settings import get_settings

# Any constant will do, as long as every process migrating the same database uses it.
MIGRATION_LOCK_KEY = 0x53_52_44_42

config = context.config


def _url() -> str:
    explicit = context.get_x_argument(as_dictionary=True).get("url")
    explicit = explicit or config.get_main_option("sqlalchemy.url")
    if explicit:
        return resolve_url(explicit, get_settings().data_dir)
    settings = get_settings()
    # getattr: the command line must work before and after settings grow database_url.
    return resolve_url(getattr(settings, "database_url", None), settings.data_dir)


def _render_item(kind: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    # Generated migrations spell plain SQLAlchemy types: a revision must keep running after
    # the model code it was generated from has moved on.
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        # SQLite can only alter a table by copying it; batch mode writes migrations that way.
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        # SQLite's DDL is transactional too once SQLAlchemy issues BEGIN (engine.py): a failed
        # upgrade then leaves the database as it was, on both backends.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Processes starting together queue here; the later ones then read the version
            # the first one wrote and have nothing left to do.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            # Migrations run with enforcement off (see create_engine); prove they broke no
            # reference before committing.
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")


def run_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=SQLModel.metadata,
        literal_binds=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given: Connection | None = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = create_engine(_url(), enforce_foreign_keys=False)
    try:
        with engine.connect() as connection:
            _run(connection)
            if connection.in_transaction():
                connection.commit()
    finally:
        engine.dispose()


# Only the command line has an ini file; migrate() leaves the application's logging alone.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()
