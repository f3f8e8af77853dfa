"""OpenTelemetry tracing, off by default (`otel_enabled`).

When on, each process gets one TracerProvider (resource and exporter from the standard environment
variables: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_EXPORTER` = `otlp` (default;
needs `opentelemetry-exporter-otlp` installed), `console` or `none`, `OTEL_EXPORTER_OTLP_*`), and spans
for:
- every HTTP request (Litestar's OpenTelemetryPlugin: a server span per request, named by route);
- every SQL statement (opentelemetry-instrumentation-sqlalchemy on the app's engine);
- every Redis command (opentelemetry-instrumentation-redis: quotas, nudges, sessions, the job queue);
- every outbound HTTP request (opentelemetry-instrumentation-httpx: webhooks, the IdP).

Off, none of this is imported: no cost on any path.
"""

from __future__ import annotations

import logging
import os
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger("tiergate.tracing")

_instrumented_libraries = False


def exporters_from_env() -> list[Any]:
    """The span exporters OTEL_TRACES_EXPORTER names (comma-separated), as the SDK's entry points
    define them; a name whose package is not installed is logged and skipped."""
    names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    found = []
    for name in names:
        if name == "none":
            continue
        points = list(entry_points(group="opentelemetry_traces_exporter", name=name))
        if not points:
            log.warning("OTEL_TRACES_EXPORTER names %r, which no installed package provides", name)
            continue
        found.append(points[0].load()())
    return found


def tracer_provider_from_env() -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "tiergate")})
    provider = TracerProvider(resource=resource)
    for exporter in exporters_from_env():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def instrument_libraries(provider: Any) -> None:
    """Redis and httpx are instrumented per process (their classes are patched), once."""
    global _instrumented_libraries
    if _instrumented_libraries:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _instrumented_libraries = True


def uninstrument_libraries() -> None:
    """Tests: undo `instrument_libraries`."""
    global _instrumented_libraries
    if not _instrumented_libraries:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    _instrumented_libraries = False


def instrument_engine(engine: Any, provider: Any) -> None:
    """Spans for the statements of one SQLAlchemy engine (the app's AsyncEngine). The instrumentor's
    `instrument()` works once per process; the engine tracer it uses is applied per engine instead (each
    app, and each test, has its own engine and provider)."""
    from opentelemetry.instrumentation.sqlalchemy import __name__ as scope_name
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter
    from opentelemetry.trace import get_tracer

    sync_engine = getattr(engine, "sync_engine", engine)
    if getattr(sync_engine, "_tiergate_traced", False):
        return
    usage = get_meter(scope_name).create_up_down_counter(
        "db.client.connections.usage", unit="connections", description="Connections by state."
    )
    EngineTracer(get_tracer(scope_name, tracer_provider=provider), sync_engine, usage)  # type: ignore[no-untyped-call]
    sync_engine._tiergate_traced = True


def request_plugin(provider: Any) -> Any:
    """Litestar's plugin: a server span per request (health probes and /metrics are left out)."""
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    return OpenTelemetryPlugin(
        OpenTelemetryConfig(
            tracer_provider=provider,
            exclude=["/health", "/metrics"],
            exclude_spans=["receive", "send"],
            scope_span_details_extractor=span_details,
        )
    )


def span_details(scope: Any) -> tuple[str, dict[str, Any]]:
    """The span's name when it starts, before routing: the method alone (`route_names` renames it)."""
    return str(scope.get("method", "HTTP")), {}


def route_names(app: Any) -> Any:
    """Middleware (after routing): names the request's span by route template (`GET
    /v1/customers/{customer_id}`), never by the raw path: ids in span names would make every request an
    operation of its own in a tracing backend. Installed only when tracing is on."""
    from opentelemetry import trace

    async def middleware(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            span = trace.get_current_span()
            if span.is_recording():
                route = scope.get("path_template") or "unmatched"
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
        await app(scope, receive, send)

    return middleware
