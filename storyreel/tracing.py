"""Optional OpenTelemetry tracing through Temporal's ``TracingInterceptor``.

Off unless the standard OpenTelemetry variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``; ``OTEL_SDK_DISABLED=true``
wins). Then a span follows a generation from the API's start call through the workflow into
every activity, on whichever worker ran it.

Nothing here is a hard dependency: the interceptor needs ``opentelemetry-api``; exporting needs
``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp`` (or a provider installed by
``opentelemetry-instrument``). When a piece is missing, a warning says which and tracing stays
off: a tracing setup problem must never stop a worker.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import Any

from temporalio.client import Interceptor

log = logging.getLogger(__name__)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OpenTelemetry variables ask for traces."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter) or any(env.get(name) for name in _ENDPOINT_VARIABLES)


def tracing_interceptors(
    service_name: str, environ: Mapping[str, str] | None = None
) -> list[Interceptor]:
    """``[TracingInterceptor()]`` when tracing is requested and possible, else ``[]``.

    Give the result to ``Client.connect(interceptors=...)``: workers built on that client use
    it too (it is also a worker interceptor).
    """
    env = os.environ if environ is None else environ
    if not tracing_requested(env):
        return []
    try:
        interceptor_module = importlib.import_module("temporalio.contrib.opentelemetry")
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError as error:
        log.warning("tracing requested but OpenTelemetry is not installed (%s): tracing off", error)
        return []
    if not _has_real_provider(trace) and not _install_provider(trace, service_name, env):
        return []
    interceptor: Interceptor = interceptor_module.TracingInterceptor()
    log.info("OpenTelemetry tracing on for %s", service_name)
    return [interceptor]


def _has_real_provider(trace: Any) -> bool:
    """Whether something (``opentelemetry-instrument``, the app) already set a provider."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _install_provider(trace: Any, service_name: str, env: Mapping[str, str]) -> bool:
    """Set a global SDK provider exporting spans in batches; ``False`` when it cannot."""
    try:
        sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
        sdk_export = importlib.import_module("opentelemetry.sdk.trace.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
    except ImportError as error:
        log.warning("tracing requested but opentelemetry-sdk is missing (%s): tracing off", error)
        return False
    exporter = _exporter(env)
    if exporter is None:
        return False
    # Attributes given here would win over the environment's: name the service only when
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES do not.
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = resources.Resource.create({} if named else {"service.name": service_name})
    provider = sdk_trace.TracerProvider(resource=resource)
    provider.add_span_processor(sdk_export.BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def _exporter(env: Mapping[str, str]) -> Any:
    """The span exporter the variables name: OTLP (gRPC or HTTP) by default, or console."""
    kind = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if kind == "console":
        return importlib.import_module("opentelemetry.sdk.trace.export").ConsoleSpanExporter()
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip().lower()
    module = (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter"
        if protocol.startswith("http")
        else "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
    )
    try:
        # The exporter reads its endpoint, headers and TLS settings from OTEL_* itself.
        return importlib.import_module(module).OTLPSpanExporter()
    except ImportError as error:
        log.warning("tracing requested but %s is missing (%s): tracing off", module, error)
        return None
