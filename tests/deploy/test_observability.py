"""Structured logs with generation and clip ids, and optional OpenTelemetry tracing, on real
workers and real runs."""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import ActivityEnvironment

from storyreel import tracing
from storyreel.contracts import GenerationStatus
from storyreel.logs import ContextFilter, JsonFormatter, clip_id_of, configure_logging
from storyreel.settings import Settings
from tests.workflows.conftest import request_for, running_worker, start

OTEL_ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}


def otel(variables: dict[str, str]) -> Settings:
    """The settings of a process whose environment holds exactly these OTEL_* variables."""
    fields = {name for name in Settings.model_fields if name.startswith("otel_")}
    values: dict[str, object] = dict.fromkeys(fields - {"otel_sdk_disabled"})
    values["otel_sdk_disabled"] = False
    values.update({name.lower(): value for name, value in variables.items()})
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Root logging as a container runs it (JSON), into a buffer; restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging(json=True, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        activity.logger.activity_info_on_message = True
        workflow.logger.workflow_info_on_message = True


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_clip_ids_come_from_clip_activity_ids() -> None:
    assert clip_id_of("clip-3-1") == 3
    assert clip_id_of("clip-12-4") == 12
    assert clip_id_of("7") is None and clip_id_of(None) is None


def test_json_lines_carry_extras_and_exceptions() -> None:
    record = logging.LogRecord("storyreel.x", logging.ERROR, __file__, 1, "%s broke", ("it",), None)
    record.generation_id = "gen-1"
    record.cost = 0.25
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    ContextFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "it broke" and line["level"] == "ERROR"
    assert line["generation_id"] == "gen-1" and line["cost"] == 0.25
    assert "ValueError: boom" in line["exception"]
    assert "clip_id" not in line  # None fields are left out


async def test_any_logger_inside_a_clip_activity_names_the_generation_and_clip(
    json_lines: io.StringIO,
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id="gen-42", activity_id="clip-3-2")

    async def render() -> None:
        logging.getLogger("activities.providers").info("ffmpeg started")
        activity.logger.info("clip %d resumes prediction %s", 3, "p-1")

    await env.run(render)
    plain, adapted = parsed(json_lines)
    for line in (plain, adapted):
        assert line["generation_id"] == "gen-42" and line["clip_id"] == 3, line
    assert adapted["message"] == "clip 3 resumes prediction p-1"  # no info dict appended
    assert adapted["activity_type"] == plain["activity_type"] and adapted["attempt"] == 1


async def test_a_real_run_logs_json_lines_with_its_ids(
    client: Client, settings: Settings, json_lines: io.StringIO
) -> None:
    request = request_for(2, "local")
    async with running_worker(client, settings):
        first = await start(client, settings, request)
        assert (await first.result()).status is GenerationStatus.completed
        # The same scenes again: both clips come from the cache, and say so in the log.
        again = await start(client, settings, request.model_copy(update={"title": "again"}))
        assert (await again.result()).status is GenerationStatus.completed
    lines = parsed(json_lines)
    cached = [line for line in lines if "reused from the cache" in line["message"]]
    assert {(line["generation_id"], line["clip_id"]) for line in cached} == {
        (again.id, 1),
        (again.id, 2),
    }
    assert any(line.get("generation_id") == first.id for line in lines)


def test_tracing_is_off_unless_asked_for() -> None:
    assert tracing.tracing_requested(otel({})) is False
    assert tracing.tracing_interceptors("storyreel-worker", otel({})) == []
    assert tracing.tracing_requested(otel(OTEL_ENDPOINT)) is True
    for off in ({"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SDK_DISABLED": "true"}):
        assert tracing.tracing_requested(otel({**off, **OTEL_ENDPOINT})) is False


def test_missing_packages_leave_tracing_off_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = importlib.import_module

    def without_otel_exporter(name: str) -> Any:
        if name.startswith("opentelemetry.exporter"):
            raise ImportError(f"No module named {name!r}")
        return real(name)

    monkeypatch.setattr(importlib, "import_module", without_otel_exporter)
    monkeypatch.setattr(tracing, "_has_real_provider", lambda trace: False)
    with caplog.at_level(logging.WARNING, logger="storyreel.tracing"):
        assert tracing.tracing_interceptors("storyreel-worker", otel(OTEL_ENDPOINT)) == []
    assert "tracing off" in caplog.text


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """A global tracer provider, as opentelemetry-instrument would set; once per process."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_traces_follow_a_generation_through_workflow_and_activities(
    client: Client, settings: Settings, spans: InMemorySpanExporter
) -> None:
    interceptors = tracing.tracing_interceptors("storyreel-test", otel(OTEL_ENDPOINT))
    assert [type(interceptor) for interceptor in interceptors] == [TracingInterceptor]
    config = client.config()
    config["interceptors"] = interceptors
    traced = Client(**config)
    async with running_worker(traced, settings):
        handle = await start(traced, settings, request_for(1, "local"))
        assert (await handle.result()).status is GenerationStatus.completed
    names = {span.name for span in spans.get_finished_spans()}
    assert "StartWorkflow:VideoGenerationWorkflow" in names
    assert "RunActivity:generate_clip" in names and "RunActivity:stitch_video" in names


class FakeTrace:
    """Stands in for ``opentelemetry.trace`` so the global provider is left alone."""

    def __init__(self) -> None:
        self.provider: Any = None

    def set_tracer_provider(self, provider: Any) -> None:
        self.provider = provider


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "storyreel-worker"),
        ({"OTEL_SERVICE_NAME": "clips-eu"}, "clips-eu"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "service.name=clips-us,team=video"}, "clips-us"),
    ],
)
def test_an_sdk_provider_is_installed_with_the_environments_service_name(
    env: dict[str, str], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)  # the SDK's resource detector reads os.environ
    fake = FakeTrace()
    settings = otel({"OTEL_TRACES_EXPORTER": "console", **env})
    assert tracing._install_provider(fake, "storyreel-worker", settings)
    assert isinstance(fake.provider, TracerProvider)
    assert fake.provider.resource.attributes["service.name"] == name
    fake.provider.shutdown()
