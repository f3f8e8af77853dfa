"""/v1/policies end to end: numbered versions with diffs, edits, restore, refusals that write nothing, and
the what-if tool judged by both the decision index and Casbin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import casbin
import pytest
from casbin_async_sqlalchemy_adapter import Adapter
from litestar import Litestar, Router
from litestar.di import Provide
from litestar.testing import AsyncTestClient

from gateway.authz.domain import parse_policy
from gateway.authz.http import CONTROLLERS
from gateway.authz.models import CasbinRule
from gateway.authz.oracle import MODEL_PATH
from gateway.authz.repository import PolicyRepository
from gateway.authz.service import DEFAULT_POLICY_PATH, IndexBuilder, PolicyService
from gateway.db.session import Database
from gateway.entitlements.index import DecisionIndex
from gateway.identity.http import authorize
from gateway.kernel.clock import FrozenClock
from gateway.web.problems import PROBLEM_MEDIA_TYPE
from tests.conftest import ADMIN_KEY, Api

EDITOR_UPDATE = {"type": "permission", "role": "editor", "resource": "projects/*", "action": "update"}
EDITOR_UPDATE_LINE = "p, role:editor, *, projects/*, update, allow"
DEFAULT_RULES = parse_policy(DEFAULT_POLICY_PATH.read_text(), 1).rules
# DecisionIndex.build is what the composition root hands the policy controller; this line fails mypy if
# the index ever stops fitting the protocol authz declares for it.
INDEX_BUILDER: IndexBuilder = DecisionIndex.build


def _mounted(app: Litestar) -> bool:
    return any(route.path.startswith("/v1/policies") for route in app.routes)


@pytest.fixture
async def policy_api(app: Litestar, db: Database, clock: FrozenClock) -> AsyncIterator[Api]:
    """The shared app, with the policy controllers mounted the way gateway/app.py mounts /v1 routers
    unless the composition root already does; the store is seeded with the default policy."""
    if not _mounted(app):
        from gateway.web.strict import reject_unknown_query_params

        app.register(
            Router(
                path="/v1",
                route_handlers=CONTROLLERS,
                guards=[authorize, reject_unknown_query_params],
                security=[{"apiKey": []}],
                dependencies={"index_builder": Provide(lambda: DecisionIndex.build, sync_to_thread=False)},
            )
        )
    async with db.unit_of_work() as session:
        await PolicyService(session, clock).seed_default()
    async with AsyncTestClient(app) as client:
        yield Api(client, ADMIN_KEY)


@pytest.fixture
async def catalog(db: Database, clock: FrozenClock) -> None:
    """The demo catalog, seeded directly: the shared `demo` fixture would start a second client (and a
    second app lifespan) beside `policy_api`."""
    from gateway.demo import seed_catalog

    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)


async def published_events(api: Api) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await api.get("/v1/events", params={"type": "policy.", "limit": 100}))[
        "data"
    ]
    return events


async def stored_lines(db: Database) -> list[tuple[str, ...]]:
    async with db.unit_of_work() as session:
        return await PolicyRepository(session).rule_lines()


def lines_of(rules: list[dict[str, Any]]) -> list[str]:
    return [rule["line"] for rule in rules]


# --- versions -------------------------------------------------------------------------------------------


async def test_seeded_default_is_version_1(policy_api: Api, db: Database, clock: FrozenClock) -> None:
    policy = await policy_api.get("/v1/policies")
    assert policy["version"] == 1
    assert lines_of(policy["rules"]) == [", ".join(r.casbin_line()) for r in DEFAULT_RULES]
    assert {
        "type": "gate",
        "feature": "reporting_advanced",
        "resource": "reports/advanced/*",
    }.items() <= next(
        r for r in policy["rules"] if r["type"] == "gate" and r["resource"] == "reports/advanced/*"
    ).items()
    assert [r.casbin_line() for r in DEFAULT_RULES] == await stored_lines(db)

    listed = await policy_api.get("/v1/policies/versions")
    assert [v["version"] for v in listed["data"]] == [1] and not listed["has_more"]
    assert listed["data"][0]["author"] is None and listed["data"][0]["added"] == len(DEFAULT_RULES)
    # Seeding again is a no-op: a restart must never overwrite what admins published.
    async with db.unit_of_work() as session:
        assert await PolicyService(session, clock).seed_default() == 1
    assert len(await published_events(policy_api)) == 1


async def test_edit_publishes_the_next_version_with_its_diff_and_event(policy_api: Api, db: Database) -> None:
    added = {"type": "permission", "role": "editor", "resource": "billing", "action": "read"}
    custom = {
        "type": "permission",
        "role": "auditor",
        "resource": "reports/*",
        "action": "read",
        "customer": "cus_acme",
    }
    version = await policy_api.post(
        "/v1/policies/edits",
        {"add": [added, custom], "remove": [EDITOR_UPDATE], "note": "editors read billing"},
    )
    assert (version["object"], version["version"], version["note"]) == (
        "policy_version",
        2,
        "editors read billing",
    )
    assert version["author"] and version["created_at"].startswith("2026-01-01")
    assert lines_of(version["diff"]["added"]) == [
        "p, role:editor, *, billing, read, allow",
        "p, role:auditor, cus_acme, reports/*, read, allow",
    ]
    assert lines_of(version["diff"]["removed"]) == [EDITOR_UPDATE_LINE]

    policy = await policy_api.get("/v1/policies")
    assert policy["version"] == 2 and EDITOR_UPDATE_LINE not in lines_of(policy["rules"])
    assert len(policy["rules"]) == len(DEFAULT_RULES) + 1
    assert await policy_api.get("/v1/policies/versions/2") == version
    # The published rule table follows the version, in Casbin's own adapter format.
    assert [", ".join(line) for line in await stored_lines(db)] == lines_of(policy["rules"])

    events = await published_events(policy_api)
    assert [(e["type"], e["data"]["version"], e["data"]["added"], e["data"]["removed"]) for e in events] == [
        ("policy.published", 1, len(DEFAULT_RULES), 0),
        ("policy.published", 2, 2, 1),
    ]


async def test_a_fetched_policy_can_be_edited_and_replaced_as_is(policy_api: Api) -> None:
    rules = (await policy_api.get("/v1/policies"))["rules"]
    rules = [r for r in rules if r["line"] != EDITOR_UPDATE_LINE]  # `line` may travel back unchanged
    version = await policy_api.post("/v1/policies/replace", {"rules": rules, "note": "no editor updates"})
    assert version["version"] == 2 and lines_of(version["diff"]["removed"]) == [EDITOR_UPDATE_LINE]


async def test_restore_publishes_a_new_version_equal_to_the_old_one(policy_api: Api, db: Database) -> None:
    v1 = await policy_api.get("/v1/policies/versions/1")
    await policy_api.post("/v1/policies/edits", {"remove": [EDITOR_UPDATE]})
    v3 = await policy_api.post("/v1/policies/versions/1/restore", {})
    assert v3["version"] == 3 and v3["rules"] == v1["rules"]
    assert v3["note"] == "restore version 1"
    assert lines_of(v3["diff"]["added"]) == [EDITOR_UPDATE_LINE] and v3["diff"]["removed"] == []
    assert [", ".join(line) for line in await stored_lines(db)] == lines_of(v1["rules"])
    listed = await policy_api.get("/v1/policies/versions", params={"limit": 2})
    assert [v["version"] for v in listed["data"]] == [3, 2] and listed["has_more"]
    rest = await policy_api.get(
        "/v1/policies/versions", params={"limit": 2, "starting_after": listed["next_cursor"]}
    )
    assert [v["version"] for v in rest["data"]] == [1] and not rest["has_more"]
    await policy_api.get("/v1/policies/versions", params={"stauts": "x"}, expect=422)
    await policy_api.get("/v1/policies/versions", params={"starting_after": "YWJj"}, expect=422)


async def test_casbin_loads_the_published_table_through_its_own_adapter(
    policy_api: Api, db: Database
) -> None:
    await policy_api.post("/v1/policies/edits", {"remove": [EDITOR_UPDATE]})
    enforcer = casbin.AsyncEnforcer(str(MODEL_PATH), Adapter(db.engine, db_class=CasbinRule))
    await enforcer.load_policy()
    current = (await policy_api.get("/v1/policies"))["rules"]
    loaded = [["p", *p] for p in enforcer.get_policy()] + [
        ["g2", *g] for g in enforcer.get_named_grouping_policy("g2")
    ]
    assert sorted(", ".join(line) for line in loaded) == sorted(lines_of(current))


# --- refusals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/policies/edits", {"add": [{**EDITOR_UPDATE, "role": "Bad Role"}]}, "add[0].role"),
        ("/v1/policies/edits", {"add": [{**EDITOR_UPDATE, "resource": "projects/*/x"}]}, "add[0].resource"),
        ("/v1/policies/edits", {"add": [{**EDITOR_UPDATE, "customer": "a:b"}]}, "add[0].customer"),
        (
            "/v1/policies/edits",
            {"add": [{"type": "tier", "plan": "pro", "kind": "capability", "key": "time_travel"}]},
            "add[0].key",
        ),
        (
            "/v1/policies/edits",
            {"add": [EDITOR_UPDATE, {"type": "gate", "feature": "f", "resource": "r", "action": "a,b"}]},
            "add[1].action",
        ),
        (
            "/v1/policies/edits",
            {"add": [{**EDITOR_UPDATE, "line": "p, role:owner, *, *, *, allow"}]},
            "add[0].line",
        ),
        ("/v1/policies/edits", {"remove": [{**EDITOR_UPDATE, "action": "delete"}]}, "remove[0]"),
        ("/v1/policies/edits", {"add": [EDITOR_UPDATE], "remove": [EDITOR_UPDATE]}, "remove[0]"),
        (
            "/v1/policies/replace",
            {
                "rules": [
                    {"type": "tier", "plan": "a", "kind": "plan", "key": "b"},
                    {"type": "tier", "plan": "b", "kind": "plan", "key": "a"},
                ]
            },
            "plan",
        ),
        ("/v1/policies/edits", {"add": [{"type": "grant", "role": "x"}]}, None),
        ("/v1/policies/edits", {"add": [{**EDITOR_UPDATE, "extra": 1}]}, None),
        (
            "/v1/policies/edits",
            {"add": [{"type": "tier", "plan": "pro", "kind": "tenant", "key": "t"}]},
            None,
        ),
    ],
)
async def test_invalid_rules_are_422_and_write_nothing(
    policy_api: Api, db: Database, path: str, body: dict[str, Any], field: str | None
) -> None:
    before = await stored_lines(db)
    response = await policy_api.client.post(path, json=body, headers=policy_api._headers(None))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem = response.json()
    if field is not None:
        assert problem["field"] == field, problem
    assert (await policy_api.get("/v1/policies"))["version"] == 1
    assert len(await published_events(policy_api)) == 1
    assert await stored_lines(db) == before


async def test_a_publish_that_changes_nothing_is_409(policy_api: Api) -> None:
    rules = (await policy_api.get("/v1/policies"))["rules"]
    conflict = await policy_api.post("/v1/policies/replace", {"rules": list(reversed(rules))}, expect=409)
    assert conflict["code"] == "no_change"
    already = {"type": "permission", "role": "owner", "resource": "*", "action": "*"}
    assert (await policy_api.post("/v1/policies/edits", {"add": [already]}, expect=409))[
        "code"
    ] == "no_change"
    assert (await policy_api.post("/v1/policies/versions/1/restore", {}, expect=409))["code"] == "no_change"
    assert (await policy_api.get("/v1/policies"))["version"] == 1


@pytest.mark.parametrize("version", [0, 2, 99, -1, 2**40])
async def test_unknown_version_is_404(policy_api: Api, version: int) -> None:
    problem = await policy_api.get(f"/v1/policies/versions/{version}", expect=404)
    assert problem["code"] in {"policy_version_not_found", "not_found"}
    await policy_api.post(f"/v1/policies/versions/{version}/restore", {}, expect=404)


async def test_tenant_scoped_keys_are_refused(policy_api: Api) -> None:
    customer = await policy_api.post("/v1/customers", {"name": "Tenant"})
    key = await policy_api.post(
        "/v1/api_keys",
        {"name": "tenant admin", "scopes": ["policies:read", "policies:write"], "customer": customer["id"]},
    )
    tenant = policy_api.as_key(key["secret"])
    for method, path in [("GET", "/v1/policies"), ("GET", "/v1/policies/versions/1")]:
        assert (await tenant.call(method, path, expect=403))["code"] == "platform_key_required"
    refused = await tenant.post("/v1/policies/edits", {"add": [EDITOR_UPDATE]}, expect=403)
    assert refused["code"] == "platform_key_required"
    reader = await policy_api.post("/v1/api_keys", {"name": "reader", "scopes": ["policies:read"]})
    reading = policy_api.as_key(reader["secret"])
    assert (await reading.get("/v1/policies"))["version"] == 1
    missing = await reading.post("/v1/policies/edits", {"remove": [EDITOR_UPDATE]}, expect=403)
    assert missing["code"] == "missing_scope"
    assert (await policy_api.get("/v1/policies"))["version"] == 1


# --- what-if --------------------------------------------------------------------------------------------


async def _tenant_on_pro(api: Api, **members: str) -> tuple[str, dict[str, str]]:
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly", "trial_days": 0})
    users = {}
    for name, role in members.items():
        member = await api.post(
            f"/v1/customers/{customer['id']}/members", {"email": f"{name}@acme.example", "role": role}
        )
        users[name] = member["user"]
    return customer["id"], users


async def test_what_if_shows_which_decisions_a_draft_flips(policy_api: Api, catalog: None) -> None:
    customer, users = await _tenant_on_pro(policy_api, editor="editor", viewer="viewer")
    editor, viewer = users["editor"], users["viewer"]
    requests = [
        {"user": editor, "customer": customer, "resource": "projects/42", "action": "update"},
        {"user": editor, "customer": customer, "resource": "projects/42", "action": "read"},
        {"user": viewer, "customer": customer, "resource": "projects/42", "action": "update"},
        {"user": editor, "customer": "cus_nobody", "resource": "projects/42", "action": "update"},
    ]
    report = await policy_api.post(
        "/v1/policies/what_if", {"remove": [EDITOR_UPDATE], "requests": requests}, expect=200
    )
    assert report["current_version"] == 1
    assert lines_of(report["diff"]["removed"]) == [EDITOR_UPDATE_LINE] and report["diff"]["added"] == []
    flipped, read, viewer_update, stranger = report["results"]
    assert flipped["changed"] and flipped["request"] == requests[0]
    assert flipped["current"] == {
        "allowed": True,
        "reason": "allowed",
        "rule": EDITOR_UPDATE_LINE,
        "index_agrees": True,
    }
    assert flipped["draft"] == {
        "allowed": False,
        "reason": "no_permission",
        "rule": None,
        "index_agrees": True,
    }
    assert not read["changed"] and read["current"] == read["draft"]
    assert read["draft"]["rule"] == "p, role:editor, *, projects/*, read, allow"
    assert not viewer_update["changed"] and viewer_update["draft"]["reason"] == "no_permission"
    assert not stranger["changed"] and stranger["current"]["reason"] == "unknown_tenant"
    assert report["summary"] == {
        "requests": 4,
        "changed": 1,
        "newly_allowed": 0,
        "newly_denied": 1,
        "disagreements": 0,
    }
    # What-if writes nothing.
    assert (await policy_api.get("/v1/policies"))["version"] == 1
    assert len(await published_events(policy_api)) == 1


async def test_what_if_with_a_complete_draft_and_feature_gates(policy_api: Api, catalog: None) -> None:
    customer, users = await _tenant_on_pro(policy_api, owner="owner")
    owner = users["owner"]
    rules = (await policy_api.get("/v1/policies"))["rules"]
    # Put advanced reports behind custom reporting too: the gate closes for the Pro owner, whose
    # permission is `*`, because Pro's plan version grants no reporting_custom.
    gate = {"type": "gate", "feature": "reporting_custom", "resource": "reports/advanced/*", "action": "*"}
    draft = [*rules, gate]
    request = {"user": owner, "customer": customer, "resource": "reports/advanced/q3", "action": "read"}
    report = await policy_api.post(
        "/v1/policies/what_if", {"rules": draft, "requests": [request]}, expect=200
    )
    (result,) = report["results"]
    assert result["current"] == {
        "allowed": True,
        "reason": "allowed",
        "rule": "p, role:owner, *, *, *, allow",
        "index_agrees": True,
    }
    assert result["draft"] == {
        "allowed": False,
        "reason": "feature_not_in_plan",
        "rule": "p, feature:reporting_custom, *, reports/advanced/*, *, deny",
        "index_agrees": True,
    }
    # What a plan unlocks is its plan versions' grants: a plan -> feature line is refused.
    plan_feature = {"type": "tier", "plan": "pro", "kind": "feature", "key": "reporting_custom"}
    refused = await policy_api.post(
        "/v1/policies/what_if", {"add": [plan_feature], "requests": [request]}, expect=422
    )
    assert (refused["code"], refused["field"]) == ("plan_feature_in_policy", "rules")
    refused = await policy_api.post("/v1/policies/edits", {"add": [plan_feature]}, expect=422)
    assert refused["code"] == "plan_feature_in_policy"
    both = {"rules": draft, "remove": [EDITOR_UPDATE], "requests": [request]}
    assert (await policy_api.post("/v1/policies/what_if", both, expect=422))["field"] == "rules"
    absent = {"remove": [{**EDITOR_UPDATE, "action": "fly"}], "requests": [request]}
    assert (await policy_api.post("/v1/policies/what_if", absent, expect=422))["field"] == "remove[0]"
    too_many = {"requests": [request] * 1001}
    await policy_api.post("/v1/policies/what_if", too_many, expect=422)


# --- the document ---------------------------------------------------------------------------------------


async def test_every_policy_operation_documents_its_responses(policy_api: Api, app: Litestar) -> None:
    paths = {
        p: item for p, item in app.openapi_schema.to_schema()["paths"].items() if p.startswith("/v1/policies")
    }
    assert set(paths) == {
        "/v1/policies",
        "/v1/policies/edits",
        "/v1/policies/replace",
        "/v1/policies/versions",
        "/v1/policies/versions/{version}",
        "/v1/policies/versions/{version}/restore",
        "/v1/policies/what_if",
    }
    for path, item in paths.items():
        for method, operation in item.items():
            documented = set(operation["responses"])
            success = {"200"} if method == "get" or path.endswith("what_if") else {"201"}
            assert success | {"401", "403", "404", "409", "422"} <= documented, (method, path, documented)
            assert operation["tags"] == ["policies"] and operation.get("security") == [{"apiKey": []}]
