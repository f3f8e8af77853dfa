"""Idempotency-Key on POST: the first response is replayed; another payload with the same key is a 409."""

from __future__ import annotations

import json
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


async def test_the_conflict_is_a_problem_like_every_other(api: Api) -> None:
    """The 409 of a reused key is RFC 9457 problem+json with the same fields, in the same encoding, as
    every other error (it used to be spaced-out JSON of its own)."""
    headers = {**api._headers(None), "Idempotency-Key": "k-format"}
    await api.client.post("/v1/customers", json={"name": "Acme"}, headers=headers)
    conflict = await api.client.post("/v1/customers", json={"name": "Other"}, headers=headers)
    missing = await api.client.get("/v1/customers/cus_missing", headers=api._headers(None))
    assert (conflict.status_code, missing.status_code) == (409, 404)
    for response in (conflict, missing):
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert list(body) == ["type", "title", "status", "code", "detail", "instance"]
        assert response.content == json.dumps(body, separators=(",", ":")).encode()
    assert conflict.json() == {
        "type": "https://tiergate.dev/problems/idempotency-key-reused",
        "title": "Idempotency-Key reused with a different request",
        "status": 409,
        "code": "idempotency_key_reused",
        "detail": "this Idempotency-Key was used with a different request",
        "instance": "/v1/customers",
    }
