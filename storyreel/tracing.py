"""Optional OpenTelemetry tracing through Temporal's ``TracingInterceptor``.

Off unless the standard OpenTelemetry variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_TRACES_EXPORTER``; ``OTEL_SDK_DISABLED=true``
wins), read like every other setting through ``Settings`` under their own names. Then a
span follows a generation from the API's start call through the workflow into every activity,
on whichever worker ran it.

Nothing here is a hard dependency: the interceptor needs ``opentelemetry-api``; exporting needs
``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp`` (or a provider installed by
``opentelemetry-instrument``). When a piece is missing, a warning says which and tracing stays
off: a tracing setup problem must never stop a worker.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from temporalio.client import Interceptor

from storyreel.settings import Settings

log = logging.getLogger(__name__)


def tracing_requested(settings: Settings) -> bool:
    """Whether the OpenTelemetry variables ask for traces."""
    if settings.otel_sdk_disabled:
        return False
    exporter = (settings.otel_traces_exporter or "").strip().lower()
    if exporter == "none":
        return False
    endpoints = (settings.otel_exporter_otlp_endpoint, settings.otel_exporter_otlp_traces_endpoint)
    return bool(exporter) or any(endpoints)


def tracing_interceptors(service_name: str, settings: Settings) -> list[Interceptor]:
    """``[TracingInterceptor()]`` when tracing is requested and possible, else ``[]``.

    Give the result to ``Client.connect(interceptors=...)``: workers built on that client use
    it too (it is also a worker interceptor).
    """
    if not tracing_requested(settings):
        return []
    try:
        interceptor_module = importlib.import_module("temporalio.contrib.opentelemetry")
        trace = importlib.import_module("opentelemetry.trace")
    except ImportError as error:
        log.warning("tracing requested but OpenTelemetry is not installed (%s): tracing off", error)
        return []
    if not _has_real_provider(trace) and not _install_provider(trace, service_name, settings):
        return []
    interceptor: Interceptor = interceptor_module.TracingInterceptor()
    log.info("OpenTelemetry tracing on for %s", service_name)
    return [interceptor]


def _has_real_provider(trace: Any) -> bool:
    """Whether something (``opentelemetry-instrument``, the app) already set a provider."""
    provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def _install_provider(trace: Any, service_name: str, settings: Settings) -> bool:
    """Set a global SDK provider exporting spans in batches; ``False`` when it cannot."""
    try:
        sdk_trace = importlib.import_module("opentelemetry.sdk.trace")
        sdk_export = importlib.import_module("opentelemetry.sdk.trace.export")
        resources = importlib.import_module("opentelemetry.sdk.resources")
    except ImportError as error:
        log.warning("tracing requested but opentelemetry-sdk is missing (%s): tracing off", error)
        return False
    exporter = _exporter(settings)
    if exporter is None:
        return False
    # Attributes given here would win over the environment's: name the service only when
    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES do not.
    named = settings.otel_service_name or "service.name=" in (
        settings.otel_resource_attributes or ""
    )
    resource = resources.Resource.create({} if named else {"service.name": service_name})
    provider = sdk_trace.TracerProvider(resource=resource)
    provider.add_span_processor(sdk_export.BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def _exporter(settings: Settings) -> Any:
    """The span exporter the variables name: OTLP (gRPC or HTTP) by default, or console."""
    kind = (settings.otel_traces_exporter or "otlp").strip().lower() or "otlp"
    if kind == "console":
        return importlib.import_module("opentelemetry.sdk.trace.export").ConsoleSpanExporter()
    protocol = (settings.otel_exporter_otlp_protocol or "grpc").strip().lower()
    module = (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter"
        if protocol.startswith("http")
        else "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
    )
    try:
        # The exporter reads its endpoint, headers and TLS settings from OTEL_* itself (the
        # process environment: that is the OpenTelemetry SDK's own configuration).
        return importlib.import_module(module).OTLPSpanExporter()
    except ImportError as error:
        log.warning("tracing requested but %s is missing (%s): tracing off", module, error)
        return None
