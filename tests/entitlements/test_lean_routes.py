"""The lean decision routes (`gateway/entitlements/lean.py`) answer exactly what the full stack answers.

Two apps over one database: one with the lean routes (the default), one with `lean_decisions = false`
(every request through Litestar's stack, guards and hooks). Generated requests (valid and invalid bodies,
every kind of credential, tenant-crossing ids, consuming checks, forward-auth header combinations) go to
both in the same order; status, headers and body bytes must be identical. Each app has its own in-memory
quota store, and both see the same sequence of consuming checks, so their counters move in lockstep.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.entitlements.lean import LeanDecisions
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.entitlements.test_check_api import synced, tenant

SEED = 20261202


@dataclasses.dataclass
class Paths:
    lean: AsyncTestClient[Litestar]
    full: AsyncTestClient[Litestar]
    lean_app: Litestar
    full_api: Api
    delegated: list[str]  # paths the lean front handed to the full stack

    async def both(self, method: str, path: str, **kw: Any) -> tuple[int, list[tuple[str, str]], bytes]:
        lean = await self.lean.request(method, path, **kw)
        full = await self.full.request(method, path, **kw)
        # Each side gives the request an id of its own (fresh per request, so not compared by value),
        # except where Litestar answers before any middleware (405, 413, ...): on both sides alike.
        ids = (len(lean.headers.get_list("x-request-id")), len(full.headers.get_list("x-request-id")))
        assert ids in ((1, 1), (0, 0)), f"{method} {path} {full.status_code}: X-Request-ID {ids}"
        answer = (lean.status_code, _headers(lean.headers.multi_items()), lean.content)
        expected = (full.status_code, _headers(full.headers.multi_items()), full.content)
        assert answer == expected, f"{method} {path} {kw}: lean {answer} != full stack {expected}"
        return answer


def _headers(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Litestar lists a 405's allowed methods in set order, which differs between two apps of one process.
    # X-Request-ID: a fresh id per request on both paths (`both` counts them).
    return sorted(
        (k, ", ".join(sorted(v.split(", "))) if k == "allow" else v) for k, v in items if k != "x-request-id"
    )


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No relay: its events would move one app's index version before the other's, mid-comparison (and two
    # relays would contend for SQLite's one writer). Nothing here depends on what it provisions.
    return dataclasses.replace(settings, relay_enabled=False)


@pytest.fixture
async def paths(
    app: Litestar, api: Api, demo: Any, settings: Settings, clock: FrozenClock, db: Database
) -> AsyncIterator[Paths]:
    assert isinstance(app.asgi_handler, LeanDecisions), "the lean routes are on by default"
    delegated: list[str] = []
    front = app.asgi_handler
    inner = front.inner

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            delegated.append(scope["path"])
        await inner(scope, receive, send)

    front.inner = counting
    full_app = create_app(dataclasses.replace(settings, lean_decisions=False), clock=clock, db=db)
    assert not isinstance(full_app.asgi_handler, LeanDecisions)
    async with AsyncTestClient(full_app) as full:
        yield Paths(api.client, full, app, Api(full, ADMIN_KEY), delegated)


@dataclasses.dataclass
class World:
    customers: dict[str, str]
    users: dict[str, str]
    keys: dict[str, str]
    tokens: dict[str, str]


async def world(api: Api, app: Litestar, paths: Paths) -> World:
    a, _, users_a = await tenant(api, app, "basic_monthly", owner="owner", editor="editor", viewer="viewer")
    b, _, users_b = await tenant(api, app, "pro_monthly", owner="owner")
    keys = {"admin": ADMIN_KEY}
    for name, scopes, customer in (
        ("tenant_a", ["check:read"], a),
        ("tenant_a_write", ["check:write"], a),
        ("no_check_scope", ["customers:read"], None),
    ):
        body = {"name": name, "scopes": scopes, **({"customer": customer} if customer else {})}
        keys[name] = (await api.post("/v1/api_keys", body))["secret"]
    tokens = {}
    for name in ("owner", "editor", "viewer"):
        issued = await api.post("/v1/tokens", {"customer": a, "user": users_a[name]})
        tokens[name] = issued["access_token"]
    issued = await api.post("/v1/tokens", {"customer": b, "user": users_b["owner"]})
    tokens["b_owner"] = issued["access_token"]
    await synced(api)
    await synced(paths.full_api)
    users = {k: v for k, v in users_a.items() if k != "clock"} | {"b_owner": users_b["owner"]}
    return World({"a": a, "b": b}, users, keys, tokens)


def a_check(rng: random.Random, w: World) -> Any:
    """One check body: mostly valid, sometimes each kind of invalid."""
    body: dict[str, Any] = {
        "customer": rng.choice([w.customers["a"], w.customers["a"], w.customers["b"], "cus_nope"])
    }
    if rng.random() < 0.7:
        body["user"] = rng.choice([*w.users.values(), "usr_stranger"])
        body["resource"] = rng.choice(["projects/42", "projects", "reports/finance", "members", "billing/x"])
        body["action"] = rng.choice(["read", "create", "update", "delete", "export"])
    if rng.random() < 0.6:
        body["feature"] = rng.choice(["sso", "projects", "api_calls", "seats", "audit_log", "nope"])
    if rng.random() < 0.3:
        body["quantity"] = rng.choice([1, 2, 5, 0, -1, "3", 2.5, 10**12])
    if rng.random() < 0.3:
        body["consume"] = rng.choice([True, False, 1, "yes"])
    oddity = rng.random()
    if oddity < 0.04:
        body["unexpected"] = 1
    elif oddity < 0.07:
        body.pop("customer")
    elif oddity < 0.09:
        body["customer"] = "cus_\u0000"
    elif oddity < 0.11:
        body["resource"] = "no spaces allowed"
    elif oddity < 0.12:
        body["customer"] = "x" * 65
    return body


def credentials(rng: random.Random, w: World) -> dict[str, str]:
    choice = rng.random()
    if choice < 0.55:
        return {"Authorization": f"Bearer {w.keys['admin']}"}
    if choice < 0.75:
        return {"Authorization": f"Bearer {rng.choice([w.keys['tenant_a'], w.keys['tenant_a_write']])}"}
    if choice < 0.85:
        return {"Authorization": f"Bearer {w.keys['no_check_scope']}"}
    return rng.choice(
        [
            {},
            {"Authorization": "Bearer tg_sk_wrong"},
            {"Authorization": "Basic abc"},
            {"Authorization": "Bearer "},
        ]
    )


def raw_body(rng: random.Random, value: Any) -> bytes:
    oddity = rng.random()
    if oddity < 0.03:
        return b""
    if oddity < 0.05:
        return b'{"customer": '
    if oddity < 0.06:
        return b"[" * 40 + b"]" * 40
    return json.dumps(value).encode()


async def test_generated_checks_get_the_same_answers_on_both_paths(
    paths: Paths, api: Api, app: Litestar
) -> None:
    w = await world(api, app, paths)
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    for _ in range(250):
        headers = {"Content-Type": "application/json", **credentials(rng, w)}
        if rng.random() < 0.75:
            path, body = "/v1/check", a_check(rng, w)
        else:
            count = rng.choice([1, 2, 5, 0])
            path, body = "/v1/check/batch", {"checks": [a_check(rng, w) for _ in range(count)]}
        status, _, _ = await paths.both("POST", path, content=raw_body(rng, body), headers=headers)
        statuses[status] = statuses.get(status, 0) + 1
    # The generator reaches every kind of answer: decisions, bad input, no key, wrong key, other tenant.
    assert {200, 401, 403, 404, 422} <= statuses.keys(), statuses


async def test_forward_auth_gets_the_same_answers_on_both_paths(
    paths: Paths, api: Api, app: Litestar
) -> None:
    w = await world(api, app, paths)
    rng = random.Random(SEED + 1)
    statuses: dict[int, int] = {}
    uris = [
        "/api/projects/42", "/api/projects", "/api/reports/finance/q1", "/api/members/7", "/api/other",
        "/API/Projects/42", "/api/projects/42;x", "/api/projects/%2e%2e/admin", "/elsewhere", "",
    ]  # fmt: skip
    for _ in range(200):
        headers: dict[str, str] = {}
        token = rng.choice([*w.tokens.values(), "not-a-jwt", None])
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        style = rng.random()
        method = rng.choice(["GET", "GET", "POST", "PUT", "DELETE"])
        if style < 0.7:
            headers["X-Original-Method"], headers["X-Original-URI"] = method, rng.choice(uris)
        elif style < 0.9:
            headers["X-Forwarded-Method"], headers["X-Forwarded-Uri"] = method, rng.choice(uris)
        else:
            headers["X-Original-Uri"] = rng.choice(uris)  # half of a pair
        status, _, _ = await paths.both("GET", "/v1/authz/forward", headers=headers)
        statuses[status] = statuses.get(status, 0) + 1
    assert {200, 401, 403} <= statuses.keys(), statuses


async def test_the_lean_path_answers_the_usual_requests_and_hands_on_the_rest(
    paths: Paths, api: Api, app: Litestar
) -> None:
    w = await world(api, app, paths)
    key = {"Authorization": f"Bearer {w.keys['admin']}"}
    check = {"customer": w.customers["a"], "feature": "sso"}
    paths.delegated.clear()
    await paths.both("POST", "/v1/check", json=check, headers=key)
    await paths.both("POST", "/v1/check/batch", json={"checks": [check, check]}, headers=key)
    token = {"Authorization": f"Bearer {w.tokens['owner']}"}
    await paths.both(
        "GET",
        "/v1/authz/forward",
        headers={**token, "X-Original-Method": "GET", "X-Original-URI": "/api/projects/1"},
    )
    # Refusals are answered by the lean path too: a wrong key, another tenant (404), a missing scope.
    await paths.both("POST", "/v1/check", json=check, headers={"Authorization": "Bearer tg_sk_wrong"})
    tenant_key = {"Authorization": f"Bearer {w.keys['tenant_a']}"}
    await paths.both(
        "POST", "/v1/check", json={"customer": w.customers["b"], "feature": "sso"}, headers=tenant_key
    )
    await paths.both("POST", "/v1/check", json={**check, "consume": True}, headers=tenant_key)
    assert paths.delegated == [], "answered without the full stack"

    # What the full stack answers differently, it answers: idempotent replays, CORS, query strings,
    # other methods and spellings, bodies that are not strictly the request type.
    # (Both apps share the idempotency table, so the lean app alone: the second call is the replay.)
    once = await paths.lean.post("/v1/check", json=check, headers={**key, "Idempotency-Key": "k1"})
    again = await paths.lean.post("/v1/check", json=check, headers={**key, "Idempotency-Key": "k1"})
    assert (once.status_code, again.status_code, again.content) == (200, 200, once.content)
    assert again.headers["idempotent-replayed"] == "true"
    await paths.both("POST", "/v1/check", json=check, headers={**key, "Origin": "https://app.example"})
    await paths.both("POST", "/v1/check?debug=1", json=check, headers=key)
    await paths.both("GET", "/v1/check", headers=key)
    await paths.both("POST", "/v1/check/", json=check, headers=key)
    await paths.both("POST", "/v1/check", json={**check, "quantity": "2"}, headers=key)
    await paths.both(
        "HEAD",
        "/v1/authz/forward",
        headers={**token, "X-Original-Method": "GET", "X-Original-URI": "/api/projects/1"},
    )
    assert set(paths.delegated) == {"/v1/check", "/v1/check/", "/v1/authz/forward"}


async def test_a_body_over_the_limit_is_the_same_413(
    app: Litestar, api: Api, demo: Any, settings: Settings, clock: FrozenClock, db: Database
) -> None:
    small = dataclasses.replace(settings, request_max_body_bytes=200)
    lean_app = create_app(small, clock=clock, db=db)
    full_app = create_app(
        dataclasses.replace(small, lean_decisions=False, relay_enabled=False), clock=clock, db=db
    )
    body = json.dumps({"checks": [{"customer": "cus_x", "feature": "sso"}] * 20}).encode()
    async with AsyncTestClient(lean_app) as lean, AsyncTestClient(full_app) as full:
        for headers in ({"Authorization": f"Bearer {ADMIN_KEY}"}, {}):
            a = await lean.post("/v1/check/batch", content=body, headers=headers)
            b = await full.post("/v1/check/batch", content=body, headers=headers)
            assert (a.status_code, a.content) == (b.status_code, b.content)
            assert a.status_code in (401, 413)


def test_check_result_and_response_keep_the_same_fields_in_order() -> None:
    """`_out` converts a decision to its response positionally (the batch's hot loop)."""
    from gateway.entitlements.schemas import CheckResponse
    from gateway.entitlements.service import CheckResult

    assert CheckResult.__struct_fields__ == CheckResponse.__struct_fields__
