"""The image, without Docker: the Dockerfile read as text, the package it installs built as a
wheel, and the entrypoint run natively in every role a deployment uses."""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from storyreel.stack import free_port, stop_process
from tests.conftest import clean_env
from tests.deploy.manifests import DOCKERFILE, DOCKERIGNORE, ENTRYPOINT, ROOT, entrypoint_roles

STARTUP_SECONDS = 60


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        # Docker drops comment lines, also in the middle of a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped.removesuffix("\\").strip() + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    return [(line.split()[0].upper(), line.partition(" ")[2]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_slim_python_311_base() -> None:
    steps = instructions()
    base = next(args for op, args in steps if op == "ARG" and args.startswith("PYTHON_IMAGE="))
    assert base == "PYTHON_IMAGE=python:3.11-slim"
    assert [args for op, args in steps if op == "FROM"] == [
        "${PYTHON_IMAGE} AS build",
        "${PYTHON_IMAGE}",
    ]


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [args for op, args in final_stage() if op == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    created = " ".join(args for op, args in final_stage() if op == "RUN")
    assert f"--uid {uid}" in created and f"--gid {gid}" in created


def test_healthcheck_and_entrypoint_are_the_entrypoint_script() -> None:
    stage = dict(final_stage())
    assert "CMD" in stage["HEALTHCHECK"]
    assert json.loads(stage["HEALTHCHECK"].split("CMD", 1)[1]) == [
        "storyreel-entrypoint",
        "healthcheck",
    ]
    assert json.loads(stage["ENTRYPOINT"]) == ["storyreel-entrypoint"]
    assert json.loads(stage["CMD"]) == ["api"]
    copies = [args for op, args in final_stage() if op == "COPY"]
    assert any(
        copy.endswith("deploy/entrypoint.sh /usr/local/bin/storyreel-entrypoint") for copy in copies
    )


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def sent(path: str) -> bool:
        # .dockerignore semantics: the last matching pattern decides.
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
                keep = negated
        return keep

    for op, args in instructions():
        if op != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [part for part in args.split() if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert sent(source), f"{source} is excluded by {DOCKERIGNORE.name}"
    assert not sent(".venv") and not sent(".env") and not sent(".storyreel")


def test_the_installed_package_carries_what_every_role_needs(tmp_path: Path) -> None:
    """``pip install .`` in the image: the wheel holds the modules and data files the roles
    load at run time (migrations, the page, the example)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("storyreel-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "worker.py",
        "api/app.py",
        "api/static/index.html",
        "activities/simulator/__main__.py",
        "storyreel/db/alembic.ini",
        "storyreel/db/migrations/env.py",
        "storyreel/db/migrations/script.py.mako",
        "storyreel/db/migrations/versions/0001_initial.py",
        "storyreel/healthcheck.py",
        "storyreel/temporal_setup.py",
        "storyreel/logs.py",
        "workflows/generation.py",
    ):
        assert needed in names, f"the image would lack {needed}"


# -- the entrypoint, natively -------------------------------------------------------------------


def entrypoint_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = clean_env()
    # The image puts the venv first on PATH; here, this interpreter's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        STORYREEL_DATA_DIR=str(tmp_path / "data"),
        ROLE_FILE=str(tmp_path / "role"),
        **extra,
    )
    return env


def run_entrypoint(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    """Long-running roles started by a test; SIGTERMed (then killed) afterwards."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        stop_process(process, 60)


def start_role(
    serving: list[subprocess.Popen[str]], args: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[str]:
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(ENTRYPOINT), *args], env=env, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    serving.append(process)
    return process


def wait_healthy(env: dict[str, str], process: subprocess.Popen[str], log: Path) -> None:
    """The image's HEALTHCHECK (no role argument: it reads the role the entrypoint wrote)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        assert process.poll() is None, f"exited {process.returncode}:\n{log.read_text()}"
        check = run_entrypoint(["healthcheck"], env, timeout=30)
        if check.returncode == 0:
            return
        assert time.monotonic() < deadline, f"never healthy: {check.stderr}\n{log.read_text()}"
        time.sleep(0.5)


def test_the_entrypoint_is_executable_posix_sh_and_refuses_unknown_roles(tmp_path: Path) -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)
    env = entrypoint_env(tmp_path)
    assert run_entrypoint([], env).returncode == 64
    unknown = run_entrypoint(["serve-everything"], env)
    assert unknown.returncode == 64 and "unknown role" in unknown.stderr
    assert {"api", "worker", "simulator", "migrate", "temporal-setup", "healthcheck", "cli"} == (
        entrypoint_roles()
    )


def test_migrate_role_brings_the_database_to_the_latest_schema(tmp_path: Path) -> None:
    database = tmp_path / "records.db"
    env = entrypoint_env(tmp_path, STORYREEL_DATABASE_URL=f"sqlite:///{database}")
    first = run_entrypoint(["migrate"], env)
    assert first.returncode == 0, first.stderr
    again = run_entrypoint(["migrate"], env)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
    assert {"alembic_version", "generations", "users", "clips"} <= tables, tables


def test_temporal_setup_role_is_idempotent(
    tmp_path: Path, temporal_env: WorkflowEnvironment
) -> None:
    address = temporal_env.client.service_client.config.target_host
    env = entrypoint_env(tmp_path, STORYREEL_TEMPORAL_ADDRESS=address)
    for _ in range(2):
        done = run_entrypoint(["temporal-setup", "--timeout", "30"], env)
        assert done.returncode == 0, done.stderr
        assert "is ready for storyreel" in done.stderr


def test_api_role_serves_json_logs_and_answers_its_healthcheck(
    tmp_path: Path, temporal_env: WorkflowEnvironment, serving: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    address = temporal_env.client.service_client.config.target_host
    env = entrypoint_env(
        tmp_path,
        PORT=str(port),
        HOST="127.0.0.1",
        LOG_CONFIG=str(ROOT / "deploy" / "logging.json"),
        STORYREEL_TEMPORAL_ADDRESS=address,
    )
    log = tmp_path / "api.log"
    process = start_role(serving, ["api"], env, log)
    wait_healthy(env, process, log)
    answer = httpx.get(f"http://127.0.0.1:{port}/v1/generations/gen-123", timeout=10)
    assert answer.status_code == 401
    process.send_signal(signal.SIGTERM)
    # uvicorn re-raises the signal after its graceful shutdown: killed by SIGTERM is normal.
    assert process.wait(timeout=30) in (0, -signal.SIGTERM)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access, lines
    assert access[-1]["generation_id"] == "gen-123" and access[-1]["http_status"] == 401


def test_worker_role_is_healthy_while_polling_and_stops_gracefully(
    tmp_path: Path, temporal_env: WorkflowEnvironment, serving: list[subprocess.Popen[str]]
) -> None:
    address = temporal_env.client.service_client.config.target_host
    env = entrypoint_env(
        tmp_path,
        STORYREEL_TEMPORAL_ADDRESS=address,
        STORYREEL_METRICS_PORT=str(free_port()),
        STORYREEL_WORKFLOW_TASK_QUEUE=f"wf-{tmp_path.name}",
    )
    log = tmp_path / "worker.log"
    process = start_role(serving, ["worker", "--queues", "workflows"], env, log)
    wait_healthy(env, process, log)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=45) == 0, log.read_text()
    assert "shutting down" in log.read_text()


def test_simulator_role_is_healthy(tmp_path: Path, serving: list[subprocess.Popen[str]]) -> None:
    env = entrypoint_env(tmp_path, SIMULATOR_PORT=str(free_port()), HOST="127.0.0.1")
    log = tmp_path / "simulator.log"
    process = start_role(serving, ["simulator", "--latency", "1", "--no-render"], env, log)
    wait_healthy(env, process, log)


def test_healthcheck_fails_when_nothing_answers(tmp_path: Path) -> None:
    env = entrypoint_env(tmp_path, PORT=str(free_port()))
    down = run_entrypoint(["healthcheck", "api"], env)
    assert down.returncode == 1 and "unhealthy" in down.stderr
    assert run_entrypoint(["healthcheck"], env).returncode == 1  # no role file yet
    assert run_entrypoint(["healthcheck", "migrate"], env).returncode == 0
