"""Staff identity through the HTTP API: a one-time login link becomes a staff session; the staff policy
(Casbin, policies/staff_*.{conf,csv}) decides per role; every staff change names the staff member."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from sqlalchemy import select

from gateway.admin.models import StaffLoginLink
from gateway.admin.staff import ROLES, StaffService, digest, role_allows, scope_allows
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def login_link(db: Database, clock: FrozenClock, email: str, role: str) -> str:
    async with db.unit_of_work(actor="system:test") as session:
        staff = StaffService(session, clock, session_ttl=timedelta(hours=12))
        member = await staff.by_email(email) or await staff.add(email, role)
        return await staff.issue_login_link(member)


async def sign_in(
    api: Api, db: Database, clock: FrozenClock, email: str, role: str
) -> tuple[Api, dict[str, Any]]:
    token = await login_link(db, clock, email, role)
    session = await api.post("/v1/staff_sessions", {"login_token": token})
    return api.as_key(session["token"]), session


async def test_a_login_link_is_single_use_short_lived_and_stored_hashed(
    api: Api, db: Database, clock: FrozenClock
) -> None:
    token = await login_link(db, clock, "Owner@Ops.example", "owner")
    assert token.startswith("tglink_") and len(token) > 40
    async with db.unit_of_work() as session:
        [stored] = (await session.scalars(select(StaffLoginLink))).all()
    assert stored.token_hash == digest(token) and token not in stored.token_hash

    session = await api.post("/v1/staff_sessions", {"login_token": token})
    assert session["token"].startswith("tgstaff_")
    assert session["staff"] == {
        "id": session["staff"]["id"],
        "object": "staff_member",
        "email": "owner@ops.example",
        "name": None,
        "role": "owner",
    }
    assert session["expires_at"] == "2026-01-01T12:00:00Z"
    again = await api.post("/v1/staff_sessions", {"login_token": token}, expect=401)
    assert again["code"] == "login_link_invalid"

    late = await login_link(db, clock, "owner@ops.example", "owner")
    clock.advance(timedelta(minutes=15))
    assert (await api.post("/v1/staff_sessions", {"login_token": late}, expect=401))["code"] == (
        "login_link_invalid"
    )
    await api.post("/v1/staff_sessions", {"login_token": "tglink_guess"}, expect=401)
    await api.post("/v1/staff_sessions", {"login_token": "x" * 201}, expect=422)

    # The session works until it expires (12 h after sign-in), then it is a 401.
    owner = api.as_key(session["token"])
    assert (await owner.get("/v1/customers"))["data"] == []
    clock.advance(timedelta(hours=12))
    problem = await owner.get("/v1/customers", expect=401)
    assert problem["code"] == "staff_session_invalid"


async def test_support_is_refused_finance_and_policy_actions_and_is_audited_by_name(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    support, who = await sign_in(api, db, clock, "sam@ops.example", "support")
    finance, _ = await sign_in(api, db, clock, "fin@ops.example", "finance")

    # Support: customers and members, yes.
    customer = await support.post("/v1/customers", {"name": "Helped", "currency": "USD"})
    await support.post(f"/v1/customers/{customer['id']}/members", {"email": "a@helped.example"})
    # Finance actions and policy actions: 403, and nothing changed.
    grant = {"amount": 500, "currency": "USD"}
    refused = await support.post(f"/v1/customers/{customer['id']}/credit_grants", grant, expect=403)
    assert refused["code"] == "staff_role_forbidden"
    assert (await support.get("/v1/policies/versions"))["data"]  # reading the policy is fine
    body = {"add": ["p, role:viewer, *, exports, read, allow"], "note": "support tries"}
    assert (await support.post("/v1/policies/edits", body, expect=403))["code"] == "staff_role_forbidden"
    assert (await api.get(f"/v1/customers/{customer['id']}/balance"))["available"] == {}
    # Finance may grant credit; it may not add members.
    await finance.post(f"/v1/customers/{customer['id']}/credit_grants", grant)
    assert (await api.get(f"/v1/customers/{customer['id']}/balance"))["available"] == {"USD": 500}
    await finance.post(f"/v1/customers/{customer['id']}/members", {"email": "b@helped.example"}, expect=403)

    await settle(api, app)
    log = (await api.get("/v1/audit_log", params={"customer": customer["id"], "limit": 100}))["data"]
    actors = {(e["action"], e["actor"]) for e in log}
    assert ("member.added", f"staff:{who['staff']['id']}") in actors


@given(st.sampled_from(ROLES), st.sampled_from(["billing", "policies", "customers", "metrics", "webhooks"]))
def test_the_role_ladder_only_widens(role: str, resource: str) -> None:
    """Owner ⊇ admin ⊇ finance, support ⊇ read_only; write implies read; only owners manage staff."""
    wider = {"owner": ["owner"], "admin": ["owner", "admin"], "finance": ["owner", "admin", "finance"]}
    wider |= {"support": ["owner", "admin", "support"], "read_only": list(ROLES)}
    for action in ("read", "write"):
        if role_allows(role, resource, action):
            assert all(role_allows(r, resource, action) for r in wider[role])
            assert role_allows(role, resource, "read")
    assert role_allows(role, "staff", "manage") == (role == "owner")


def test_the_issue_s_refusals_in_the_policy() -> None:
    assert not scope_allows("support", "billing:write") and not scope_allows("support", "policies:write")
    assert scope_allows("support", "customers:write") and scope_allows("finance", "billing:write")
    assert not scope_allows("read_only", "customers:write") and scope_allows("read_only", "metrics:read")
    assert scope_allows("admin", "policies:write") and not scope_allows("finance", None)


async def test_a_deactivated_member_s_session_and_links_stop_working(
    api: Api, db: Database, clock: FrozenClock
) -> None:
    reader, session = await sign_in(api, db, clock, "ro@ops.example", "read_only")
    assert (await reader.get("/v1/customers"))["data"] == []
    assert (await reader.post("/v1/customers", {"name": "Nope"}, expect=403))[
        "code"
    ] == "staff_role_forbidden"
    link = await login_link(db, clock, "ro@ops.example", "read_only")
    async with db.unit_of_work() as s:
        member = await StaffService(s, clock, session_ttl=timedelta(hours=1)).by_email("ro@ops.example")
        assert member is not None and member.id == session["staff"]["id"]
        member.active = False
    assert (await reader.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"
    assert (await api.post("/v1/staff_sessions", {"login_token": link}, expect=401))["code"] == (
        "login_link_invalid"
    )
