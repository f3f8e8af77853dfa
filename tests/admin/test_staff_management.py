"""Staff management through /v1/staff (issue #14 "Access"), as an integrator's script would use it: an owner
invites members (the login link comes back once), changes their role, deactivates them (their open
sessions end at once); the last active owner stays an owner; bad input is a 4xx problem and changes
nothing; every change is in the audit log under the staff member who made it."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.admin.staff import ROLES, LastOwner, StaffService, scope_allows
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.admin.test_staff import sign_in
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


def by_email(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["email"]: m for m in listing["data"]}


async def test_an_owner_invites_changes_a_role_and_deactivates_and_each_takes_effect_at_once(
    api: Api, app: Litestar, db: Database, clock: FrozenClock
) -> None:
    owner, me = await sign_in(api, db, clock, "olga@ops.example", "owner")
    listing = await owner.get("/v1/staff")
    assert listing["object"] == "list" and listing["has_more"] is False
    assert by_email(listing)["olga@ops.example"] == {
        "id": me["staff"]["id"],
        "object": "staff_member",
        "email": "olga@ops.example",
        "name": None,
        "role": "owner",
        "active": True,
        "created_at": "2026-01-01T00:00:00Z",
        "last_sign_in_at": "2026-01-01T00:00:00Z",
    }

    # Invite an admin: the answer carries the one-time link, once; signing in with it works.
    invited = await owner.post("/v1/staff", {"email": "Ada@Ops.example", "role": "admin", "name": "Ada"})
    assert invited["object"] == "staff_login_link"
    token = invited["login_token"]
    assert token.startswith("tglink_") and invited["login_url"].endswith(f"/admin/login/{token}")
    assert invited["expires_at"] == "2026-01-01T00:15:00Z"
    ada = invited["staff"]
    assert (ada["email"], ada["name"], ada["role"], ada["active"]) == (
        "ada@ops.example",
        "Ada",
        "admin",
        True,
    )
    assert ada["last_sign_in_at"] is None
    assert "login_token" not in str(await owner.get("/v1/staff")) and token not in str(
        await owner.get("/v1/staff")
    )
    session = await api.post("/v1/staff_sessions", {"login_token": token})
    assert session["staff"]["id"] == ada["id"]
    admin = api.as_key(session["token"])
    # An admin may see the staff, not manage it (the policy's `staff, manage` is the owners').
    assert set(by_email(await admin.get("/v1/staff"))) == {"olga@ops.example", "ada@ops.example"}
    refused = await admin.post("/v1/staff", {"email": "eve@ops.example", "role": "owner"}, expect=403)
    assert refused["code"] == "staff_role_forbidden"
    refused = await admin.patch(f"/v1/staff/{me['staff']['id']}", {"active": False}, expect=403)
    assert refused["code"] == "staff_role_forbidden"
    assert (await admin.post(f"/v1/staff/{ada['id']}/login_link", expect=403))["code"] == (
        "staff_role_forbidden"
    )

    # Owner makes her support: the same session token is refused the staff list and finance actions.
    changed = await owner.patch(f"/v1/staff/{ada['id']}", {"role": "support"})
    assert (changed["role"], changed["active"], changed["last_sign_in_at"]) == (
        "support",
        True,
        "2026-01-01T00:00:00Z",
    )
    support = admin
    assert (await support.get("/v1/staff", expect=403))["code"] == "staff_role_forbidden"
    customer = await support.post("/v1/customers", {"name": "Helped", "currency": "USD"})
    grant = {"amount": 500, "currency": "USD"}
    refused = await support.post(f"/v1/customers/{customer['id']}/credit_grants", grant, expect=403)
    assert refused["code"] == "staff_role_forbidden"

    # Deactivated: her open session is a 401 at once, and no new link is issued until she is back.
    deactivated = await owner.patch(f"/v1/staff/{ada['id']}", {"active": False})
    assert deactivated["active"] is False and deactivated["role"] == "support"
    assert (await support.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"
    assert (await owner.post(f"/v1/staff/{ada['id']}/login_link", expect=409))["code"] == (
        "staff_member_inactive"
    )
    reactivated = await owner.patch(f"/v1/staff/{ada['id']}", {"active": True})
    assert reactivated["active"] is True
    assert (await support.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"  # stays ended
    fresh = await owner.post(f"/v1/staff/{ada['id']}/login_link")
    assert fresh["staff"]["id"] == ada["id"] and fresh["login_token"] != token
    again = api.as_key((await api.post("/v1/staff_sessions", {"login_token": fresh["login_token"]}))["token"])
    assert [c["name"] for c in (await again.get("/v1/customers"))["data"]] == ["Helped"]

    # Every change is in the audit log, under the owner who made it; no e-mail address in the entries.
    await settle(api, app)
    log = (await api.get("/v1/audit_log", params={"action": "staff.", "limit": 100}))["data"]
    by_owner = [(e["action"], e["target"]) for e in log if e["actor"] == f"staff:{me['staff']['id']}"]
    target = f"staff_member:{ada['id']}"
    for action in (
        "staff.created",
        "staff.login_link_issued",
        "staff.role_changed",
        "staff.deactivated",
        "staff.reactivated",
    ):
        assert (action, target) in by_owner, action
    role_change = next(e for e in log if e["action"] == "staff.role_changed")
    assert role_change["data"] == {"role": "support", "previous_role": "admin"}
    deactivation = next(e for e in log if e["action"] == "staff.deactivated")
    assert deactivation["data"] == {"sessions_ended": 1}
    assert "ada@ops.example" not in str(log)


async def test_the_last_owner_stays_an_owner_and_nobody_changes_their_own_role(
    api: Api, db: Database, clock: FrozenClock
) -> None:
    owner, me = await sign_in(api, db, clock, "olga@ops.example", "owner")
    olga = me["staff"]["id"]
    before = await api.get("/v1/staff")
    # The platform key (no staff member of its own) may not demote or deactivate the last active owner.
    for change in ({"role": "admin"}, {"active": False}, {"role": "read_only", "active": False}):
        problem = await api.patch(f"/v1/staff/{olga}", change, expect=409)
        assert problem["code"] == "last_owner" and problem["status"] == 409
        assert problem["type"] == "https://tiergate.dev/problems/last-owner"
    # Nor may the owner herself: her own role and her own activity are another owner's to change.
    for change in ({"role": "admin"}, {"active": False}):
        assert (await owner.patch(f"/v1/staff/{olga}", change, expect=409))["code"] == "staff_self_change"
    assert await api.get("/v1/staff") == before
    assert (await owner.get("/v1/customers"))["data"] == []  # still signed in, still an owner
    # A no-change PATCH of oneself is no change at all.
    assert (await owner.patch(f"/v1/staff/{olga}", {"role": "owner", "active": True}))["role"] == "owner"

    # With a second active owner, either may go; the one left is the last again.
    second = (await owner.post("/v1/staff", {"email": "bo@ops.example", "role": "owner"}))["staff"]
    assert (await owner.patch(f"/v1/staff/{second['id']}", {"role": "finance"}))["role"] == "finance"
    assert (await api.patch(f"/v1/staff/{olga}", {"role": "admin"}, expect=409))["code"] == "last_owner"
    await owner.patch(f"/v1/staff/{second['id']}", {"role": "owner"})
    assert (await api.patch(f"/v1/staff/{olga}", {"active": False}))["active"] is False
    assert (await owner.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"
    # A deactivated owner does not count: the remaining active owner is the last one.
    problem = await api.patch(f"/v1/staff/{second['id']}", {"active": False}, expect=409)
    assert problem["code"] == "last_owner"


async def test_bad_input_is_a_problem_and_changes_nothing(api: Api, db: Database, clock: FrozenClock) -> None:
    owner, _ = await sign_in(api, db, clock, "olga@ops.example", "owner")
    await owner.post("/v1/staff", {"email": "sam@ops.example", "role": "support"})
    before = await api.get("/v1/staff")
    sam = by_email(before)["sam@ops.example"]["id"]

    duplicate = await owner.post("/v1/staff", {"email": "SAM@ops.example", "role": "admin"}, expect=409)
    assert duplicate["code"] == "staff_member_exists"
    for body, field in (
        ({"email": "new@ops.example", "role": "superuser"}, "role"),
        ({"email": "not-an-address", "role": "admin"}, "email"),
        ({"email": "a b@ops.example", "role": "admin"}, "email"),
        ({"email": "new@ops.example", "role": "admin", "name": "x" * 201}, "name"),
        ({"email": "new@ops.example"}, "role"),
        ({"email": "new@ops.example", "role": "admin", "scopes": ["*"]}, "scopes"),
    ):
        problem = await owner.post("/v1/staff", body, expect=422)
        assert (problem["status"], problem["code"]) == (422, "validation_failed"), problem
        assert field in str(problem), (field, problem)
    for body in ({"role": "root"}, {"active": "no"}, {"name": "renamed"}):
        problem = await owner.patch(f"/v1/staff/{sam}", body, expect=422)
        assert problem["code"] == "validation_failed"
    missing = await owner.patch("/v1/staff/stf_nobody", {"role": "admin"}, expect=404)
    assert missing["code"] == "staff_member_not_found"
    assert (await owner.post("/v1/staff/stf_nobody/login_link", expect=404))[
        "code"
    ] == "staff_member_not_found"
    await owner.patch(f"/v1/staff/{'x' * 300}", {"role": "admin"}, expect=404)
    assert await api.get("/v1/staff") == before


async def test_platform_keys_need_the_staff_scopes(api: Api) -> None:
    reader = await api.post("/v1/api_keys", {"name": "reader", "scopes": ["staff:read"]})
    writer = await api.post("/v1/api_keys", {"name": "writer", "scopes": ["staff:write"]})
    other = await api.post("/v1/api_keys", {"name": "other", "scopes": ["customers:write"]})
    as_reader, as_writer = api.as_key(reader["secret"]), api.as_key(writer["secret"])
    assert (await as_reader.get("/v1/staff"))["data"] == []
    body = {"email": "first@ops.example", "role": "owner"}
    refused = await as_reader.post("/v1/staff", body, expect=403)
    assert refused["code"] == "missing_scope" and refused["required_scope"] == "staff:write"
    assert (await api.as_key(other["secret"]).get("/v1/staff", expect=403))["code"] == "missing_scope"
    created = await as_writer.post("/v1/staff", body)
    assert created["staff"]["role"] == "owner"
    assert [m["email"] for m in (await as_writer.get("/v1/staff"))["data"]] == ["first@ops.example"]


def test_only_owners_hold_staff_write_and_admins_may_read() -> None:
    assert [r for r in ROLES if scope_allows(r, "staff:write")] == ["owner"]
    assert [r for r in ROLES if scope_allows(r, "staff:read")] == ["owner", "admin"]


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    db: Database, clock: FrozenClock
) -> None:
    """The last-owner check locks every active owner's row: the second of two crossing demotions waits
    for the first, then finds one owner left and is refused."""
    ttl = timedelta(hours=1)
    async with db.unit_of_work(actor="system:test") as session:
        staff = StaffService(session, clock, session_ttl=ttl)
        a, b = (await staff.add("a@ops.example", "owner")).id, (await staff.add("b@ops.example", "owner")).id
    first_holds, second_started = asyncio.Event(), asyncio.Event()

    async def demote(target: str, acting: str, *, hold: bool) -> str:
        try:
            async with db.unit_of_work(actor=f"staff:{acting}") as session:
                if not hold:
                    second_started.set()
                await StaffService(session, clock, session_ttl=ttl).change(
                    target, role="admin", acting=acting
                )
                if hold:  # keep the lock until the other demotion has begun
                    first_holds.set()
                    await second_started.wait()
                    await asyncio.sleep(0.3)
            return "changed"
        except LastOwner:
            return "last_owner"

    first = asyncio.create_task(demote(a, b, hold=True))
    # The first holds the owners' rows before the second begins (a fixed 0.1 s sleep was not always
    # long enough on a loaded CI machine: the demotions then ran the other way round).
    await first_holds.wait()
    second = await demote(b, a, hold=False)
    assert (await first, second) == ("changed", "last_owner")
    async with db.unit_of_work() as session:
        roles = {
            m.email: m.role for m, _ in await StaffService(session, clock, session_ttl=ttl).list_members()
        }
    assert roles == {"a@ops.example": "admin", "b@ops.example": "owner"}
