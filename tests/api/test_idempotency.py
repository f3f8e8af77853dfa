"""Idempotency-Key on POST: the first response is replayed; another payload with the same key is a 409."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def count_customers(api: Api) -> int:
    return len((await api.get("/v1/customers", params={"limit": 100}))["data"])


async def test_retry_replays_the_first_response_and_writes_once(api: Api) -> None:
    headers = {"Idempotency-Key": "create-acme-1"}
    first = await api.client.post(
        "/v1/customers", json={"name": "Acme"}, headers={**api._headers(None), **headers}
    )
    second = await api.client.post(
        "/v1/customers", json={"name": "Acme"}, headers={**api._headers(None), **headers}
    )
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert await count_customers(api) == 1


async def test_same_key_with_another_payload_is_a_conflict(api: Api) -> None:
    await api.post("/v1/customers", {"name": "Acme"}, headers={"Idempotency-Key": "k-2"})
    problem = await api.post(
        "/v1/customers", {"name": "Other"}, headers={"Idempotency-Key": "k-2"}, expect=409
    )
    assert problem["code"] == "idempotency_key_reused"
    assert await count_customers(api) == 1


async def test_errors_are_replayed_too_but_keys_are_per_caller(api: Api) -> None:
    bad: dict[str, Any] = {"name": ""}
    one = await api.post("/v1/customers", bad, headers={"Idempotency-Key": "k-3"}, expect=422)
    two = await api.post("/v1/customers", bad, headers={"Idempotency-Key": "k-3"}, expect=422)
    assert one == two
    key = await api.post("/v1/api_keys", {"name": "second", "scopes": ["customers:write"]})
    other = api.as_key(key["secret"])
    # Another API key may use the same key string for its own request.
    await other.post("/v1/customers", {"name": "Mine"}, headers={"Idempotency-Key": "k-3"})


async def test_invalid_key_is_rejected(api: Api) -> None:
    problem = await api.post(
        "/v1/customers", {"name": "A"}, headers={"Idempotency-Key": "x" * 300}, expect=422
    )
    assert problem["code"] == "validation_failed"
    assert await count_customers(api) == 0
