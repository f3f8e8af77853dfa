"""Issue 9 hole #3 and issue 18 "seats under concurrency": every path that activates a member (REST,
invites, SCIM) goes through one seat check, serialised per tenant on SQLite and on PostgreSQL; seats
used are reported truthfully; roles are validated against the policy.

The races run against a replica served by uvicorn in the test's event loop (`conftest.replica`), so the
parallel requests really interleave inside the app."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api
from tests.scim.helpers import SCIM, USER, scim_tenant, synced


async def seats_views(api: Api, customer: str) -> tuple[int, int]:
    """Seats used as `/v1/entitlements` and `/v1/check` report them, once the index caught up."""
    await synced(api)
    snapshot = await api.get(f"/v1/entitlements/{customer}")
    seats = next(f for f in snapshot["features"] if f["feature"] == "seats")
    check = await api.post("/v1/check", {"customer": customer, "feature": "seats"}, expect=200)
    return seats["used"], check["used"]


async def active_members(api: Api, customer: str) -> list[str]:
    return sorted(m["email"] for m in (await api.get(f"/v1/customers/{customer}/members"))["data"])


async def scim_create(api: Api, token: str, email: str) -> Any:
    return await api.client.post(
        "/scim/v2/Users",
        json={"schemas": [USER], "userName": email},
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM},
    )


async def test_rest_member_endpoint_takes_a_seat_and_validates_the_role(served_api: Api) -> None:
    api = served_api
    customer, _ = await scim_tenant(api, "basic_monthly")  # Basic: 1 seat
    first = await api.post(
        f"/v1/customers/{customer}/members", {"email": "one@acme.example", "role": "owner"}
    )
    assert first["status"] == "active"

    full = await api.post(f"/v1/customers/{customer}/members", {"email": "two@acme.example"}, expect=409)
    assert (full["code"], full["seats_used"], full["seats_limit"], full["plan"]) == (
        "seat_limit_reached",
        1,
        1,
        "basic",
    )
    unknown = await api.post(
        f"/v1/customers/{customer}/members", {"email": "x@acme.example", "role": "superuser"}, expect=422
    )
    assert (unknown["code"], unknown["field"]) == ("unknown_role", "role")
    # `admin` exists in the policy, but Basic does not hand it out (checked before the seat).
    refused = await api.post(
        f"/v1/customers/{customer}/members", {"email": "x@acme.example", "role": "admin"}, expect=422
    )
    assert (refused["code"], refused["field"]) == ("role_not_allowed", "role")
    bad_patch = await api.patch(
        f"/v1/customers/{customer}/members/{first['id']}", {"role": "superuser"}, expect=422
    )
    assert bad_patch["code"] == "unknown_role"
    assert await active_members(api, customer) == ["one@acme.example"]
    assert await seats_views(api, customer) == (1, 1)

    # Removing the member frees the seat; re-adding (a reactivation) takes it again, once.
    await api.delete(f"/v1/customers/{customer}/members/{first['id']}")
    assert await seats_views(api, customer) == (0, 0)
    await api.post(f"/v1/customers/{customer}/members", {"email": "two@acme.example"})
    again = await api.post(f"/v1/customers/{customer}/members", {"email": "one@acme.example"}, expect=409)
    assert again["code"] == "seat_limit_reached"
    assert await seats_views(api, customer) == (1, 1)


async def test_six_parallel_scim_creates_on_one_seat_admit_exactly_one(served_api: Api) -> None:
    api = served_api
    customer, token = await scim_tenant(api, "basic_monthly")
    answers = await asyncio.gather(*(scim_create(api, token, f"u{i}@acme.example") for i in range(6)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 403, 403, 403, 403, 403], [a.text for a in answers]
    assert {a.json().get("scimType") for a in answers if a.status_code == 403} == {"seatLimitReached"}
    assert len(await active_members(api, customer)) == 1
    assert await seats_views(api, customer) == (1, 1)


async def test_ten_seats_with_eight_taken_admit_exactly_two_of_six(served_api: Api) -> None:
    api = served_api
    customer, token = await scim_tenant(api, "pro_monthly")  # Pro: 10 seats
    for i in range(8):
        await api.post(f"/v1/customers/{customer}/members", {"email": f"m{i}@acme.example"})
    answers = await asyncio.gather(*(scim_create(api, token, f"new{i}@acme.example") for i in range(6)))
    assert sorted(a.status_code for a in answers) == [201, 201, 403, 403, 403, 403]
    assert len(await active_members(api, customer)) == 10
    assert await seats_views(api, customer) == (10, 10)


async def test_two_parallel_invite_acceptances_for_the_last_seat_admit_one(served_api: Api) -> None:
    api = served_api
    customer, _ = await scim_tenant(api, "basic_monthly")
    tokens = [
        (await api.post(f"/v1/customers/{customer}/invites", {"email": f"i{i}@acme.example"}))["token"]
        for i in range(2)
    ]
    answers = await asyncio.gather(*(accept(api, t) for t in tokens))
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert [a.json()["code"] for a in answers if a.status_code == 409] == ["seat_limit_reached"]
    assert len(await active_members(api, customer)) == 1
    assert await seats_views(api, customer) == (1, 1)


async def test_invites_scim_and_rest_racing_for_one_seat_admit_exactly_one(served_api: Api) -> None:
    api = served_api
    customer, token = await scim_tenant(api, "basic_monthly")
    invites = [
        (await api.post(f"/v1/customers/{customer}/invites", {"email": f"i{i}@acme.example"}))["token"]
        for i in range(3)
    ]
    answers = await asyncio.gather(
        *(accept(api, t) for t in invites),
        *(scim_create(api, token, f"s{i}@acme.example") for i in range(3)),
        *(rest_add(api, customer, f"r{i}@acme.example") for i in range(2)),
    )
    kinds = ["invite"] * 3 + ["scim"] * 3 + ["rest"] * 2
    admitted = [k for k, a in zip(kinds, answers, strict=True) if a.status_code in (200, 201)]
    assert len(admitted) == 1, [(a.status_code, a.text) for a in answers]
    # Every other path answers its own "no seat left", and nothing else.
    for kind, answer in zip(kinds, answers, strict=True):
        if answer.status_code in (200, 201):
            continue
        if kind == "scim":
            assert (answer.status_code, answer.json()["scimType"]) == (403, "seatLimitReached")
        else:
            assert (answer.status_code, answer.json()["code"]) == (409, "seat_limit_reached")
    assert len(await active_members(api, customer)) == 1
    assert await seats_views(api, customer) == (1, 1)


async def accept(api: Api, token: str) -> Any:
    return await api.client.post(
        "/v1/invites/accept", json={"token": token}, headers={"Authorization": f"Bearer {api.key}"}
    )


async def rest_add(api: Api, customer: str, email: str) -> Any:
    return await api.client.post(
        f"/v1/customers/{customer}/members",
        json={"email": email},
        headers={"Authorization": f"Bearer {api.key}"},
    )
