"""Prometheus /metrics: who may scrape it, and that each family says what happened."""

from __future__ import annotations

import dataclasses
import re
import socket
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.config import Settings
from tests.conftest import Api


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (labels matched exactly where given), or fail naming what is there."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head = line.rsplit(" ", 1)[0]
        found = dict(re.findall(r'(\w+)="([^"]*)"', head))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(
        f"no sample {name} {labels} in:\n"
        + "\n".join(line for line in text.splitlines() if line.startswith(name))
    )


def sample_or_zero(text: str, name: str, **labels: str) -> float:
    try:
        return sample(text, name, **labels)
    except AssertionError:
        return 0.0


async def scrape(api: Api) -> str:
    response = await api.client.get("/metrics", headers=api._headers(None))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_need_a_platform_key_with_the_operations_scope(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 401
    narrow = await api.post("/v1/api_keys", {"name": "prom", "scopes": ["operations:read"]})
    other = await api.post("/v1/api_keys", {"name": "other", "scopes": ["metrics:read"]})
    missing = await api.client.get("/metrics", headers={"Authorization": f"Bearer {other['secret']}"})
    assert missing.status_code == 403
    assert missing.json()["code"] == "missing_scope"
    assert (
        await api.client.get("/metrics", headers={"Authorization": f"Bearer {narrow['secret']}"})
    ).status_code == 200


async def test_a_tenant_key_may_not_scrape(api: Api) -> None:
    customer = await api.post("/v1/customers", {"name": "T", "currency": "USD"})
    key = await api.post("/v1/api_keys", {"name": "t", "scopes": ["*"], "customer": customer["id"]})
    response = await api.client.get("/metrics", headers={"Authorization": f"Bearer {key['secret']}"})
    assert response.status_code == 403
    assert response.json()["code"] == "platform_key_required"


async def test_latency_by_route_template_decisions_by_reason_and_index_state(api: Api, demo: Any) -> None:
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
    before = await scrape(api)
    route = "/v1/customers/{customer_id}"
    seen = sample_or_zero(
        before, "tiergate_http_request_duration_seconds_count", method="GET", route=route, status="200"
    )
    for _ in range(3):
        await api.get(f"/v1/customers/{customer['id']}")
    await api.get("/v1/customers/cus_missing", expect=404)
    answers = [
        await api.post("/v1/check", {"customer": customer["id"], "feature": "reporting_advanced"}, expect=200)
        for _ in range(2)
    ]
    reason = answers[0]["reason"]
    assert {a["reason"] for a in answers} == {reason}
    counted = sample_or_zero(before, "tiergate_decisions_total", kind="feature", reason=reason)
    text = await scrape(api)
    assert (
        sample(text, "tiergate_http_request_duration_seconds_count", method="GET", route=route, status="200")
        == seen + 3
    )
    assert (
        sample(text, "tiergate_http_request_duration_seconds_count", method="GET", route=route, status="404")
        >= 1
    )
    assert sample(text, "tiergate_decisions_total", kind="feature", reason=reason) == counted + 2
    assert sample(text, "tiergate_index_version") >= 1
    assert sample(text, "tiergate_index_stale") == 0
    assert sample(text, "tiergate_index_staleness_seconds") >= 0
    assert sample(text, "tiergate_webhook_deliveries", status="pending") == 0


async def test_every_response_carries_a_request_id_and_keeps_a_plain_incoming_one(api: Api) -> None:
    response = await api.client.get("/health/live", headers={"X-Request-ID": "edge-42.a"})
    assert response.headers["x-request-id"] == "edge-42.a"
    odd = await api.client.get("/health/live", headers={"X-Request-ID": "a b\u00e9".encode("latin-1")})
    assert re.fullmatch(r"[0-9a-f]{24}", odd.headers["x-request-id"])
    fresh = await api.client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{24}", fresh.headers["x-request-id"])


async def test_lean_decision_routes_are_counted_once_and_carry_a_request_id(
    app: Litestar, api: Api, demo: Any
) -> None:
    from gateway.entitlements.lean import LeanDecisions

    assert isinstance(app.asgi_handler, LeanDecisions), "the lean routes are on by default"
    customer = await api.post("/v1/customers", {"name": "Lean", "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
    name = "tiergate_http_request_duration_seconds_count"
    before = await scrape(api)
    check = {"customer": customer["id"], "feature": "reporting_basic"}
    auth = api._headers(None)
    kept = await api.client.post("/v1/check", json=check, headers={**auth, "X-Request-ID": "edge-7"})
    assert (kept.status_code, kept.headers["x-request-id"]) == (200, "edge-7")
    fresh = await api.client.post("/v1/check/batch", json={"checks": [check]}, headers=auth)
    assert fresh.status_code == 200 and re.fullmatch(r"[0-9a-f]{24}", fresh.headers["x-request-id"])
    refused = await api.client.post("/v1/check", json=check)  # no key: 401 from the lean route
    assert refused.status_code == 401 and re.fullmatch(r"[0-9a-f]{24}", refused.headers["x-request-id"])
    # A body that is not strictly a check is handed to the full stack (422 there): counted once, one id.
    handed = await api.client.post("/v1/check", json={**check, "quantity": "1"}, headers=auth)
    assert handed.status_code == 422 and len(handed.headers.get_list("x-request-id")) == 1
    forward = await api.client.get("/v1/authz/forward", headers={"X-Request-ID": "edge-8"})
    assert forward.headers["x-request-id"] == "edge-8"
    text = await scrape(api)

    def moved(route: str, status: str, method: str = "POST") -> float:
        labels = {"method": method, "route": route, "status": status}
        return sample_or_zero(text, name, **labels) - sample_or_zero(before, name, **labels)

    assert moved("/v1/check", "200") == 1
    assert moved("/v1/check/batch", "200") == 1
    assert moved("/v1/check", "401") == 1
    assert moved("/v1/check", "422") == 1
    assert moved("/v1/authz/forward", str(forward.status_code), "GET") == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, metrics_port=free_port())


async def test_the_metrics_port_serves_without_a_credential(app: Litestar, settings: Settings) -> None:
    # What is asserted is access, not speed: the 5 s default read timeout ran out once in a CI rehearsal
    # on a machine loaded far beyond the suite's own three workers (load average 8 on 2 cores).
    async with AsyncTestClient(app), httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"http://127.0.0.1:{settings.metrics_port}/metrics")
        other = await client.get(f"http://127.0.0.1:{settings.metrics_port}/v1/customers")
    assert response.status_code == 200
    assert "tiergate_index_version" in response.text
    assert other.status_code == 404
