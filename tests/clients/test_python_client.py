"""The Python SDK (`clients/python`) against a live Tiergate served over HTTP (uvicorn on a real socket).

- Local decisions equal `/v1/check` for every (user, tenant, resource, action) of a grid over the demo
  catalog's tiers, members, gated reports, an ended subscription and a customer that never subscribed.
- They follow changes over `GET /v1/changes`: a role change and a plan change reach the local answers
  within the bound; a tenant key's stream carries its own tenant only; `Last-Event-ID` resumes.
- Past the staleness bound (the server gone) answers are `index_stale`, denied unless `fail_open`.
- End-user tokens verify offline with the JWKS; the ASGI middleware and the Django middleware use it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from tiergate_client import ApiError, Tiergate, TokenInvalid, TokenVerifier
from tiergate_client.asgi import Forbidden, TiergateAuthMiddleware, end_user, requires

from gateway.config import Settings
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.entitlements.test_check_api import synced, tenant
from tests.provisioning.helpers import manual_settings
from tests.served import replica

__all__ = ["replica"]
Replica = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def settings() -> Settings:
    # The relay is not what these tests are about (members are stored directly); on SQLite its background
    # passes would only contend for the one writer. The stream ends every second: clients reconnect.
    return manual_settings(changes_stream_max_seconds=1.0, changes_heartbeat_seconds=0.25)


RESOURCES = [
    "projects",
    "projects/7",
    "reports/basic",
    "reports/advanced",
    "reports/custom/q3",
    "billing",
    "members",
    "settings",
    "nothing/here",
]
ACTIONS = ["read", "create", "update", "delete"]


def base_url(api: Api) -> str:
    return str(api.client.base_url)


async def grid(api: Api) -> tuple[list[dict[str, str]], dict[str, Any]]:
    app: Any = api.app  # type: ignore[attr-defined]
    basic, _, b = await tenant(api, app, "basic_monthly", owner="owner", viewer="viewer", admin="admin")
    pro, pro_sub, p = await tenant(api, app, "pro_monthly", admin="admin", editor="editor", viewer="viewer")
    ent, _, e = await tenant(api, app, "enterprise_monthly", owner="owner", editor="editor")
    ended, ended_sub, x = await tenant(api, app, "pro_monthly", admin="admin")
    await api.post(f"/v1/subscriptions/{ended_sub}/cancel", {"at_period_end": False})
    never = (await api.post("/v1/customers", {"name": "Never", "currency": "USD"}))["id"]
    await synced(api)
    people = {basic: b, pro: p, ent: e, ended: x, never: {"ghost": "u_ghost"}}
    requests = [
        {"customer": c, "user": u, "resource": r, "action": a}
        for c, users in people.items()
        for u in [*(v for k, v in users.items() if k != "clock"), "u_stranger"]
        for r, a in itertools.product(RESOURCES, ACTIONS)
    ]
    return requests, {"pro": pro, "pro_sub": pro_sub, "pro_users": p, "basic": basic}


async def server_answers(tg: Tiergate, requests: list[dict[str, str]]) -> list[dict[str, Any]]:
    answers: list[dict[str, Any]] = []
    for start in range(0, len(requests), 500):
        answers += (await tg.checks.batch(requests[start : start + 500]))["results"]
    return answers


def same(local: Any, server: dict[str, Any]) -> tuple[Any, ...]:
    return (
        (local.allowed, local.reason, local.role, local.plan, local.inactive_since),
        (server["allowed"], server["reason"], server["role"], server["plan"], server["inactive_since"]),
    )


async def until(predicate: Callable[[], Any], seconds: float = 5.0) -> float:
    started = time.monotonic()
    while not await predicate():
        assert time.monotonic() - started < seconds, "not within the bound"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_local_decisions_equal_the_server_and_follow_role_and_plan_changes(replica: Replica) -> None:
    async with replica() as api:
        requests, ids = await grid(api)
        async with Tiergate(base_url(api), ADMIN_KEY) as tg, tg.local(max_staleness_seconds=5) as local:
            server = await server_answers(tg, requests)
            assert len(requests) == len(server) > 500
            reasons = set()
            for request, answer in zip(requests, server, strict=True):
                decision = await local.allowed(
                    request["user"], request["customer"], request["resource"], request["action"]
                )
                mine, theirs = same(decision, answer)
                assert mine == theirs, request
                assert decision.index_version <= answer["index_version"]
                reasons.add(decision.reason)
            # The grid reaches every answer the index gives.
            assert reasons == {
                "allowed",
                "no_permission",
                "role_not_allowed",
                "feature_not_in_plan",
                "subscription_inactive",
                "unknown_subject",
                "unknown_tenant",
            }

            # A role change: the Pro viewer becomes an editor.
            pro, viewer = ids["pro"], ids["pro_users"]["viewer"]
            members = (await api.get(f"/v1/customers/{pro}/members"))["data"]
            membership = next(m["id"] for m in members if m["user"] == viewer)
            before = await local.allowed(viewer, pro, "projects/7", "update")
            assert (before.allowed, before.reason) == (False, "no_permission")
            await api.patch(f"/v1/customers/{pro}/members/{membership}", {"role": "editor"})

            async def viewer_may_edit() -> bool:
                return (await local.allowed(viewer, pro, "projects/7", "update")).allowed

            took = await until(viewer_may_edit)
            assert took < 5.0

            # A plan change: Pro -> Basic, whose tier does not hand out `admin`.
            admin = ids["pro_users"]["admin"]
            assert (await local.allowed(admin, pro, "members", "create")).allowed
            await api.post(
                f"/v1/subscriptions/{ids['pro_sub']}/plan_change", {"price": "basic_monthly", "timing": "now"}
            )

            async def admin_inactive() -> bool:
                decision = await local.allowed(admin, pro, "members", "create")
                return decision.reason == "role_not_allowed"

            await until(admin_inactive)
            answer = await tg.checks.check(customer=pro, user=admin, resource="members", action="create")
            mine, theirs = same(await local.allowed(admin, pro, "members", "create"), answer)
            assert mine == theirs
            # Bundles are fetched per change, not per decision.
            assert local.reloads < 20


async def read_events(response: httpx.Response, wanted: Callable[[str, dict[str, Any]], bool]) -> list[Any]:
    events: list[tuple[str, dict[str, Any], str | None]] = []
    name, data, event_id = "message", "", None
    async for line in response.aiter_lines():
        if line == "":
            payload = json.loads(data) if data else {}
            events.append((name, payload, event_id))
            if wanted(name, payload):
                return events
            name, data, event_id = "message", "", None
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif line.startswith("id:"):
            event_id = line[3:].strip()
    return events


async def test_the_change_stream_resumes_from_an_event_id_and_a_tenant_key_hears_only_its_own(
    replica: Replica,
) -> None:
    async with replica() as api:
        app: Any = api.app  # type: ignore[attr-defined]
        mine, _, m = await tenant(api, app, "pro_monthly", admin="admin", viewer="viewer")
        other, _, o = await tenant(api, app, "pro_monthly", admin="admin", viewer="viewer")
        position = (await api.client.get("/health")).json()["index_version"]
        secret = (
            await api.post("/v1/api_keys", {"name": "app", "scopes": ["entitlements:read"], "customer": mine})
        )["secret"]
        # Changes in both tenants while nobody listens.
        for customer in (other, mine):
            members = (await api.get(f"/v1/customers/{customer}/members"))["data"]
            viewer = next(x for x in members if x["role"] == "viewer")
            await api.patch(f"/v1/customers/{customer}/members/{viewer['id']}", {"role": "editor"})
        await synced(api)

        headers = {"Authorization": f"Bearer {secret}", "Last-Event-ID": str(position)}
        async with api.client.stream("GET", "/v1/changes", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = await read_events(response, lambda n, p: n == "change" and mine in p.get("tenants", []))
        hello = events[0]
        assert hello[0] == "hello" and hello[1]["resumed"] is True
        changes = [e for e in events if e[0] == "change"]
        assert changes and all(set(e[1]["tenants"]) <= {mine} for e in changes)
        assert all(int(e[2]) >= position for e in changes)
        assert other not in json.dumps([e[1] for e in events])

        # An id from before what the replica keeps (or from before its last rebuild): reset.
        app.state.engine.feed.floor = position + 10**6
        async with api.client.stream("GET", "/v1/changes", headers=headers) as response:
            events = await read_events(response, lambda n, p: n == "reset")
        assert [e[0] for e in events] == ["hello", "reset"]

        bad = await api.client.get("/v1/changes", headers={**headers, "Last-Event-ID": "abc"})
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert m and o


async def test_answers_past_the_staleness_bound_are_index_stale(replica: Replica) -> None:
    # A stream that goes quiet (a stalled proxy, a partition): heartbeats every 5 s, a bound of 0.5 s.
    quiet = manual_settings(changes_stream_max_seconds=30.0, changes_heartbeat_seconds=5.0)
    async with replica(quiet) as api:
        app: Any = api.app  # type: ignore[attr-defined]
        customer, _, users = await tenant(api, app, "pro_monthly", admin="admin")
        async with Tiergate(base_url(api), ADMIN_KEY) as tg:
            closed = tg.local(max_staleness_seconds=0.5)
            open_ = tg.local(max_staleness_seconds=0.5, fail_open=True)
            async with closed, open_:
                assert (await closed.allowed(users["admin"], customer, "projects", "create")).allowed
                assert (await open_.allowed(users["admin"], customer, "projects", "create")).allowed
                await asyncio.sleep(0.8)  # nothing heard for longer than the bound
                denied = await closed.allowed(users["admin"], customer, "projects", "create")
                allowed = await open_.allowed(users["admin"], customer, "projects", "create")
                assert (denied.allowed, denied.reason, denied.stale) == (False, "index_stale", True)
                assert (allowed.allowed, allowed.reason, allowed.stale) == (True, "index_stale", True)
                # News arrives (a change): fresh again, and the change is in the answer.
                await api.post(
                    f"/v1/customers/{customer}/members", {"email": "new@acme.example", "role": "viewer"}
                )

                async def fresh() -> bool:
                    return not closed.stale

                await until(fresh)
                decision = await closed.allowed(users["admin"], customer, "projects", "create")
                assert (decision.allowed, decision.reason) == (True, "allowed")


async def test_end_user_tokens_verify_offline_and_the_asgi_middleware_guards_routes(
    replica: Replica, clock: FrozenClock
) -> None:
    async with replica() as api:
        app: Any = api.app  # type: ignore[attr-defined]
        customer, _, users = await tenant(api, app, "pro_monthly", admin="admin", viewer="viewer")
        async with Tiergate(base_url(api), ADMIN_KEY) as tg, tg.local() as local:
            token = (await tg.tokens.issue(customer=customer, user=users["viewer"]))["access_token"]
            verifier = TokenVerifier(base_url(api), clock=lambda: clock.now().timestamp())
            user = await asyncio.to_thread(verifier.verify, token)
            assert (user.user, user.customer, user.roles, user.plan) == (
                users["viewer"],
                customer,
                ("viewer",),
                "pro",
            )
            head, body, signature = token.split(".")
            forged = f"{head}.{body}.{signature[:-4]}AAAA"
            with pytest.raises(TokenInvalid):
                await asyncio.to_thread(verifier.verify, forged)
            with pytest.raises(TokenInvalid, match="ES256"):
                await asyncio.to_thread(verifier.verify, "eyJhbGciOiJub25lIn0.e30.")

            @requires("projects", "update", decider=local)
            async def edit(scope: dict[str, Any]) -> str:
                return "edited"

            @requires("projects", "read", decider=local)
            async def read(scope: dict[str, Any]) -> str:
                return "read"

            async def inner(scope: Any, receive: Any, send: Any) -> None:
                try:
                    text = await (edit if scope["path"] == "/edit" else read)(scope)
                    status = 200
                except Forbidden as refused:
                    text, status = refused.reason, 403
                who = end_user(scope)
                payload = json.dumps({"result": text, "user": who.user if who else None}).encode()
                await send({"type": "http.response.start", "status": status, "headers": []})
                await send({"type": "http.response.body", "body": payload})

            guarded = TiergateAuthMiddleware(inner, verifier=verifier)
            transport = httpx.ASGITransport(app=guarded)
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                missing = await client.get("/read")
                assert (missing.status_code, missing.json()["code"]) == (401, "token_missing")
                bearer = {"Authorization": f"Bearer {token}"}
                ok = await client.get("/read", headers=bearer)
                assert (ok.status_code, ok.json()) == (200, {"result": "read", "user": users["viewer"]})
                refused = await client.get("/edit", headers=bearer)
                assert (refused.status_code, refused.json()["result"]) == (403, "no_permission")
                bad = await client.get("/read", headers={"Authorization": f"Bearer {forged}"})
                assert (bad.status_code, bad.json()["code"]) == (401, "token_invalid")


async def test_the_django_middleware_attaches_the_verified_user(replica: Replica, clock: FrozenClock) -> None:
    import django
    from django.conf import settings as django_settings

    if not django_settings.configured:
        django_settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], TIERGATE={"BASE_URL": "http://unused"})
        django.setup()
    from django.http import HttpResponse
    from django.test import RequestFactory
    from tiergate_client.django import TiergateMiddleware

    async with replica() as api:
        app: Any = api.app  # type: ignore[attr-defined]
        customer, _, users = await tenant(api, app, "pro_monthly", admin="admin")
        token = (await api.post("/v1/tokens", {"customer": customer, "user": users["admin"]}))["access_token"]
        verifier = TokenVerifier(base_url(api), clock=lambda: clock.now().timestamp())
        seen: list[Any] = []

        def view(request: Any) -> HttpResponse:
            seen.append(request.tiergate_user)
            return HttpResponse("ok")

        middleware = TiergateMiddleware(view, verifier=verifier)
        factory = RequestFactory()
        ok = await asyncio.to_thread(middleware, factory.get("/", HTTP_AUTHORIZATION=f"Bearer {token}"))
        assert ok.status_code == 200 and seen[0].user == users["admin"] and seen[0].customer == customer
        missing = await asyncio.to_thread(middleware, factory.get("/"))
        assert missing.status_code == 401 and json.loads(missing.content)["code"] == "token_missing"
        assert missing["Content-Type"] == "application/problem+json"


async def test_api_errors_carry_the_problem_code_and_posts_are_idempotent(replica: Replica) -> None:
    async with replica() as api, Tiergate(base_url(api), ADMIN_KEY) as tg:
        with pytest.raises(ApiError) as missing:
            await tg.customers.get("cus_missing")
        assert (missing.value.status, missing.value.code) == (404, "customer_not_found")
        first = await tg.customers.create(name="Once", currency="EUR", idempotency_key="create-once-1")
        again = await tg.customers.create(name="Once", currency="EUR", idempotency_key="create-once-1")
        assert first["id"] == again["id"]
        listed = await tg.customers.list(limit=100)
        assert [c["id"] for c in listed["data"]].count(first["id"]) == 1
