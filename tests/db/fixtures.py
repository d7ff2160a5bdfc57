"""Database fixtures: every test runs on a SQLite file and on a throwaway PostgreSQL cluster.

A plugin module rather than a conftest so that other test packages can use the same
fixtures (``pytest_plugins = ["tests.db.fixtures"]`` in the top-level conftest).

The cluster is Debian's PostgreSQL (``initdb`` + ``pg_ctl``), started once per session on a
free port and stopped at the end whatever happens. Where its binaries are missing the
PostgreSQL half is skipped on a developer's machine and fails in CI (``CI`` set).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import update
from sqlmodel import Session, col, select

from storyreel.db import Records, migrate
from storyreel.db.models import MICROS, ApiKey, CostEntry, CostTotal
from storyreel.db.repository import DISPLAY_PREFIX_LENGTH
from storyreel.stack import free_port

PEPPER = "test-pepper"
BACKENDS = ["sqlite", "postgresql"]


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found and (Path(found).parent / "initdb").exists():
        return Path(found).parent
    # Debian keeps the server binaries out of PATH, one directory per major version.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for candidate in reversed(versions):
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def postgres_unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason}")


@dataclass
class PostgresCluster:
    """A private PostgreSQL server for this test session."""

    bin_dir: Path
    root: Path
    port: int
    # initdb refuses to run as root: then every server command runs as the postgres user.
    as_user: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _run(self, *args: str) -> None:
        log = self.root / "commands.log"
        with log.open("a") as out:
            done = subprocess.run(
                [*self.as_user, *args],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed:\n{log.read_text()[-4000:]}")

    def start(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        # Durability settings off: the cluster lives for one test session.
        options = (
            f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def _admin(self, statement: sql.Composed) -> None:
        with psycopg.connect(self._dsn(), autocommit=True) as connection:
            connection.execute(statement)

    def _server_version(self) -> int:
        with psycopg.connect(self._dsn(), autocommit=True) as connection:
            return connection.info.server_version

    def create_database(self, template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            if self._server_version() >= 150000:
                # Copying the files of a small template is several times faster than
                # PostgreSQL 15's default of writing every block through the WAL.
                statement += sql.SQL(" STRATEGY = FILE_COPY")
        self._admin(statement)
        return name

    def drop_database(self, name: str) -> None:
        # FORCE: a test that failed midway may have left connections open.
        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        postgres_unavailable("no initdb/pg_ctl on PATH or under /usr/lib/postgresql/*/bin")
    as_user: list[str] = []
    # A short path in /tmp: the socket path has a ~100 byte limit, and pytest's own tmp dirs
    # are private to root, which the postgres user could not enter.
    root = Path(tempfile.mkdtemp(prefix="storyreel-pg-"))
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            owner = None
        if owner is None or runuser is None:
            shutil.rmtree(root, ignore_errors=True)
            postgres_unavailable("running as root without a 'postgres' user to run the server as")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = [runuser, "-u", "postgres", "--"]
    cluster = PostgresCluster(bin_dir=bin_dir, root=root, port=free_port(), as_user=as_user)
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            if (cluster.data / "postmaster.pid").exists():
                cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy instead of migrating their own."""
    path = tmp_path_factory.mktemp("template") / "storyreel.db"
    migrate(f"sqlite:///{path}")
    # migrate() closed its connections, so the WAL is checkpointed into the main file.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    """A migrated database that tests clone (CREATE DATABASE ... TEMPLATE)."""
    name = postgres.create_database()
    migrate(postgres.url(name))
    return name


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _database(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, *, migrated: bool
) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "records" / "storyreel.db"
        if migrated:
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    # Looked up lazily, so a SQLite-only selection (-k sqlite) never starts PostgreSQL.
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    template = request.getfixturevalue("postgres_template") if migrated else None
    name = cluster.create_database(template=template)
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh database in the session's cluster."""
    yield from _database(request, backend, tmp_path, migrated=False)


@pytest.fixture
def migrated_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """A database at the latest schema, cloned from a template migrated once per session."""
    yield from _database(request, backend, tmp_path, migrated=True)


@pytest.fixture
def records(migrated_url: str) -> Iterator[Records]:
    """The repository over a migrated database."""
    repository = Records.from_url(migrated_url, pepper=PEPPER)
    try:
        yield repository
    finally:
        repository.dispose()


def revoke(records: Records, key: str) -> bool:
    """Revoke a key as an operator would, in the database (the product has no route for it)."""
    with Session(records.engine) as session, session.begin():
        result = session.connection().execute(
            update(ApiKey)
            .where(
                col(ApiKey.prefix) == key[:DISPLAY_PREFIX_LENGTH], col(ApiKey.revoked_at).is_(None)
            )
            .values(revoked_at=datetime.now(UTC))
        )
        return result.rowcount > 0


def billed_seconds(records: Records, generation_id: str) -> dict[str, float | None]:
    """The run's ledger entries: the billed seconds of each, by idempotency key."""
    query = select(col(CostEntry.idempotency_key), col(CostEntry.billed_seconds)).where(
        col(CostEntry.generation_id) == generation_id
    )
    with Session(records.engine) as session:
        return dict(session.exec(query).all())


def spent(records: Records, user_id: int) -> float:
    """The user's running total in the ledger."""
    query = select(col(CostTotal.total_micros)).where(col(CostTotal.user_id) == user_id)
    with Session(records.engine) as session:
        return (session.exec(query).first() or 0) / MICROS
