"""OFREP (OpenFeature Remote Evaluation Protocol) over entitlements: the wire contract through the test
client, then the real PyPI OpenFeature SDK + OFREP provider against a real server on loopback."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from litestar import Litestar, Router

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.entitlements.engine import Engine, EngineSettings
from gateway.entitlements.ofrep import OFREP_CONTROLLERS
from gateway.identity.http import authorize
from gateway.kernel.clock import SystemClock
from tests.conftest import Api
from tests.entitlements.test_check_api import check, synced, tenant

SINGLE = "/ofrep/v1/evaluate/flags"


def with_ofrep(app: Litestar) -> Litestar:
    """Mount the OFREP routes the way gateway/app.py does (once it does, this is a no-op)."""
    if SINGLE not in (app.openapi_schema.paths or {}):
        app.register(Router(path="/", route_handlers=OFREP_CONTROLLERS, guards=[authorize]))
        # The document is generated once and cached; drop it so it includes the routes added late.
        app._openapi_schema = None
    return app


@pytest.fixture
def app(app: Litestar) -> Litestar:
    return with_ofrep(app)


async def evaluate(api: Api, key: str, context: Any, expect: int = 200) -> dict[str, Any]:
    body = {"context": context} if context is not None else {}
    result: dict[str, Any] = await api.post(f"{SINGLE}/{key}", body, expect=expect)
    return result


async def test_flags_follow_the_plan(api: Api, app: Litestar, demo: Any) -> None:
    customer, sub, _ = await tenant(api, app)

    flag = await evaluate(api, "reporting_basic", {"targetingKey": customer})
    assert flag == {
        "key": "reporting_basic",
        "value": True,
        "reason": "TARGETING_MATCH",
        "variant": "on",
        "metadata": {"kind": "boolean"},
    }
    # Known to the catalog, not granted by Basic: off (an answer, not an error).
    off = await evaluate(api, "reporting_advanced", {"targetingKey": customer})
    assert (off["value"], off["reason"], off["variant"]) == (False, "DISABLED", "off")
    # `customer` is an alias of targetingKey.
    projects = await evaluate(api, "projects", {"customer": customer, "plan": "ignored"})
    assert (projects["value"], projects["variant"], projects["reason"]) == (5, "limited", "TARGETING_MATCH")
    assert projects["metadata"] == {"kind": "gauge", "unlimited": False, "used": 0, "remaining": 5}
    await check(api, customer, feature="projects", consume=True)
    assert (await evaluate(api, "projects", {"targetingKey": customer}))["metadata"]["used"] == 1
    calls = await evaluate(api, "api_calls", {"targetingKey": customer})
    assert calls["value"] == 10_000 and calls["metadata"]["resets_at"].startswith("2026-04-01")
    # Evaluating looks, never consumes.
    assert (await evaluate(api, "projects", {"targetingKey": customer}))["metadata"]["used"] == 1

    # Pro: advanced reports on, projects unlimited (-1 by convention).
    await api.post(f"/v1/subscriptions/{sub}/plan_change", {"price": "pro_monthly"})
    await synced(api)
    assert (await evaluate(api, "reporting_advanced", {"targetingKey": customer}))["value"] is True
    unlimited = await evaluate(api, "projects", {"targetingKey": customer})
    assert (unlimited["value"], unlimited["variant"]) == (-1, "unlimited")
    assert unlimited["metadata"]["unlimited"] is True and "remaining" not in unlimited["metadata"]

    # Paused: every flag off, with the type of the feature.
    await api.post(f"/v1/subscriptions/{sub}/pause", {})
    await synced(api)
    paused = await evaluate(api, "projects", {"targetingKey": customer})
    assert (paused["value"], paused["reason"]) == (0, "DISABLED")
    assert (await evaluate(api, "reporting_basic", {"targetingKey": customer}))["value"] is False
    # An id with no subscription at all looks the same: flags are not a way to probe customer ids.
    stranger = await evaluate(api, "reporting_basic", {"targetingKey": "cus_nobody"})
    assert (stranger["value"], stranger["reason"]) == (False, "DISABLED")


async def test_errors_are_ofrep_shaped(api: Api, app: Litestar, demo: Any) -> None:
    customer, _, _ = await tenant(api, app)
    missing = await evaluate(api, "no_such_flag", {"targetingKey": customer}, expect=404)
    assert missing == {
        "key": "no_such_flag",
        "errorCode": "FLAG_NOT_FOUND",
        "errorDetails": "no feature 'no_such_flag' in the catalog",
    }
    for context in (None, {}, {"plan": "pro"}):
        failure = await evaluate(api, "sso", context, expect=400)
        assert (failure["key"], failure["errorCode"]) == ("sso", "TARGETING_KEY_MISSING")
    for context in ({"targetingKey": 42}, {"targetingKey": customer, "customer": "cus_other"}, "x", [1]):
        failure = await evaluate(api, "sso", context, expect=400)
        assert (failure["key"], failure["errorCode"]) == ("sso", "INVALID_CONTEXT"), failure
    headers = {**api._headers(None), "Content-Type": "application/json"}
    broken = await api.client.post(f"{SINGLE}/sso", content=b"{not json", headers=headers)
    assert broken.status_code == 400
    assert broken.json()["errorCode"] == "PARSE_ERROR" and broken.json()["key"] == "sso"
    not_object = await api.client.post(f"{SINGLE}/sso", content=b"[1, 2]", headers=headers)
    assert (not_object.status_code, not_object.json()["errorCode"]) == (400, "PARSE_ERROR")
    bulk = await api.post(SINGLE, {"context": {}}, expect=400)
    assert bulk == {
        "errorCode": "TARGETING_KEY_MISSING",
        "errorDetails": "context.targetingKey (the customer id) is required",
    }

    # Authentication and scopes are the /v1 ones (problem+json: OFREP defines no body for 401/403).
    anonymous = await api.client.post(f"{SINGLE}/sso", json={"context": {"targetingKey": customer}})
    assert anonymous.status_code == 401
    billing_only = await api.post("/v1/api_keys", {"name": "billing", "scopes": ["subscriptions:read"]})
    await evaluate(api.as_key(billing_only["secret"]), "sso", {"targetingKey": customer}, expect=403)
    scoped = await api.post(
        "/v1/api_keys", {"name": "app", "scopes": ["entitlements:read"], "customer": customer}
    )
    mine = api.as_key(scoped["secret"])
    assert (await evaluate(mine, "reporting_basic", {"targetingKey": customer}))["value"] is True
    other = await evaluate(mine, "reporting_basic", {"targetingKey": "cus_someone_else"}, expect=403)
    assert other["code"] == "customer_forbidden"


async def test_bulk_evaluation_with_etag(api: Api, app: Litestar, demo: Any) -> None:
    customer, _, _ = await tenant(api, app)
    body = {"context": {"targetingKey": customer}}
    response = await api.client.post(SINGLE, json=body, headers=api._headers(None))
    assert response.status_code == 200
    flags = {f["key"]: f for f in response.json()["flags"]}
    # Every catalog feature, granted or not, so a client-side provider never falls back to its default.
    assert set(flags) >= {"projects", "api_calls", "reporting_basic", "reporting_advanced", "sso"}
    assert flags["projects"]["value"] == 5 and flags["sso"]["reason"] == "DISABLED"
    etag = response.headers["etag"]

    same = await api.client.post(SINGLE, json=body, headers=api._headers({"If-None-Match": etag}))
    assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", etag)
    weak_list = api._headers({"If-None-Match": f'"other", W/{etag}'})
    assert (await api.client.post(SINGLE, json=body, headers=weak_list)).status_code == 304

    # Usage is part of the answer, so spending quota moves the ETag.
    await check(api, customer, feature="projects", consume=True)
    moved = await api.client.post(SINGLE, json=body, headers=api._headers({"If-None-Match": etag}))
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert {f["key"]: f for f in moved.json()["flags"]}["projects"]["metadata"]["used"] == 1


async def test_a_stale_index_fails_closed_except_fail_open_features(
    api: Api, app: Litestar, demo: Any
) -> None:
    customer, _, _ = await tenant(api, app)
    engine: Engine = app.state.engine
    # A negative bound makes every answer "too stale to trust", as if the database had been gone long.
    engine.settings = EngineSettings(max_staleness_seconds=-1, fail_open_features=frozenset({"projects"}))
    closed = await evaluate(api, "reporting_basic", {"targetingKey": customer})
    assert (closed["value"], closed["reason"]) == (False, "STALE")
    still_open = await evaluate(api, "projects", {"targetingKey": customer})
    assert (still_open["value"], still_open["reason"]) == (5, "STALE")


async def test_the_openapi_document_describes_the_protocol(api: Api, app: Litestar) -> None:
    paths = app.openapi_schema.to_schema()["paths"]
    single, bulk = paths[f"{SINGLE}/{{key}}"]["post"], paths[SINGLE]["post"]
    assert {"200", "400", "401", "403", "404"} <= set(single["responses"])
    assert {"200", "304", "400", "401", "403"} <= set(bulk["responses"])
    assert "ETag" in bulk["responses"]["200"]["headers"]
    assert any(p["name"] == "If-None-Match" for p in bulk["parameters"])
    assert single["responses"]["400"]["content"]["application/json"]["schema"]


# -- a real OpenFeature client against a real server --------------------------------------------------
KEY = "tg_sk_ofrep_client_0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    path = Path(tmp_path_factory.mktemp("ofrep")) / "ofrep.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"

    async def prepare() -> dict[str, str]:
        from gateway.db.migrate import upgrade_head

        db = Database(url)
        await upgrade_head(db)
        async with db.unit_of_work() as session:
            result = await seed_demo(session, SystemClock(), api_key=KEY)
        await db.dispose()
        return result.customers

    customers = asyncio.run(prepare())
    app = with_ofrep(create_app(Settings(database_url=url, migrate_on_start=False, scheduler_enabled=False)))
    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        pytest.fail("the server under test did not start")
    yield base, customers
    uv.should_exit = True
    thread.join(timeout=10)


def test_the_openfeature_sdk_evaluates_entitlements(server: tuple[str, dict[str, str]]) -> None:
    from openfeature import api as openfeature
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode

    base, customers = server
    basic = EvaluationContext(targeting_key=customers["Tiny Studio"])
    pro = EvaluationContext(targeting_key=customers["Bright Agency"])
    openfeature.set_provider(
        OFREPProvider(base, headers_factory=lambda: {"Authorization": f"Bearer {KEY}"}), domain="tiergate"
    )
    try:
        client = openfeature.get_client("tiergate")
        assert client.get_boolean_value("reporting_advanced", True, basic) is False
        assert client.get_boolean_value("reporting_advanced", False, pro) is True
        assert client.get_integer_value("projects", 0, basic) == 5
        assert client.get_integer_value("projects", 0, pro) == -1  # unlimited

        details = client.get_integer_details("api_calls", 0, basic)
        assert (details.value, details.reason, details.variant) == (10_000, "TARGETING_MATCH", "limited")
        assert details.flag_metadata["used"] == 0 and details.flag_metadata["unlimited"] is False

        # Errors come back as the caller's default with the protocol's error code.
        unknown = client.get_boolean_details("no_such_flag", True, basic)
        assert (unknown.value, unknown.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
        no_target = client.get_boolean_details("reporting_basic", True, EvaluationContext())
        assert (no_target.value, no_target.error_code) == (True, ErrorCode.TARGETING_KEY_MISSING)
        wrong_type = client.get_boolean_details("projects", True, basic)
        assert (wrong_type.value, wrong_type.error_code) == (True, ErrorCode.TYPE_MISMATCH)
    finally:
        openfeature.clear_providers()

    # A wrong key is an authentication failure, also answered with the default.
    openfeature.set_provider(
        OFREPProvider(base, headers_factory=lambda: {"Authorization": "Bearer tg_sk_wrong"}), domain="bad"
    )
    try:
        denied = openfeature.get_client("bad").get_boolean_details("reporting_basic", False, basic)
        assert (denied.value, denied.error_code) == (False, ErrorCode.GENERAL)
    finally:
        openfeature.clear_providers()
