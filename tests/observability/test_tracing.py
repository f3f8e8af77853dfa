"""OpenTelemetry: off by default; on, spans for requests, SQL, Redis and outbound HTTP."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.observability import tracing
from tests.conftest import ADMIN_KEY, IN_CI, REDIS_URL

pytestmark = pytest.mark.skipif(not REDIS_URL and not IN_CI, reason="needs Redis (always run in CI)")


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider, exporter
    finally:
        tracing.uninstrument_libraries()


def test_tracing_is_off_by_default() -> None:
    assert Settings().otel_enabled is False


async def test_requests_sql_redis_and_outbound_http_have_spans(
    settings: Settings, clock: FrozenClock, db: Database, spans: Any
) -> None:
    from gateway.demo import seed_catalog

    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    provider, exporter = spans
    # This test is about spans, not Redis's 50 ms quota timeout, which the first traced call (connection,
    # script load, span export) overran on a loaded CI machine: a patient timeout here.
    traced = dataclasses.replace(
        settings, otel_enabled=True, redis_url=REDIS_URL, redis_quota_timeout_seconds=5.0
    )
    app = create_app(traced, clock=clock, db=db, tracer_provider=provider)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with AsyncTestClient(app) as client:
        customer = (
            await client.post("/v1/customers", json={"name": "T", "currency": "USD"}, headers=headers)
        ).json()
        await client.post(
            "/v1/subscriptions", json={"customer": customer["id"], "price": "basic_monthly"}, headers=headers
        )
        client.blocking_portal.call(app.state.engine.sync)
        exporter.clear()
        check = await client.post(
            "/v1/check",
            json={"customer": customer["id"], "feature": "projects", "consume": True},
            headers=headers,
        )
        assert check.status_code == 200, check.text
        assert check.json()["reason"] == "allowed", check.text
        got = await client.get(f"/v1/customers/{customer['id']}", headers=headers)
        assert got.status_code == 200
        async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport()) as outbound:
            # An outbound request as webhooks and the OIDC client make them (nothing listens: refused).
            with pytest.raises(httpx.ConnectError):
                await outbound.get("http://127.0.0.1:9/hook")
    finished = exporter.get_finished_spans()
    names = [s.name for s in finished]
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert any("/v1/check" in s.name for s in server), names
    assert any("/v1/customers/{customer_id}" in s.name for s in server), [s.name for s in server]
    sql = [
        s
        for s in finished
        if (s.attributes and "db.statement" in s.attributes)
        or (s.attributes or {}).get("db.system") in ("sqlite", "postgresql")
    ]
    assert sql, names
    redis = [s for s in finished if (s.attributes or {}).get("db.system") == "redis"]
    assert redis, names
    outbound_spans = [
        s
        for s in finished
        if s.kind.name == "CLIENT"
        and (s.attributes or {}).get("http.request.method", (s.attributes or {}).get("http.method")) == "GET"
    ]
    assert outbound_spans, names
    # The SQL of the GET belongs to its request's trace.
    get_span = next(s for s in server if "/v1/customers/{customer_id}" in s.name)
    assert any(s.context.trace_id == get_span.context.trace_id for s in sql)
