"""The console's API additions: customer search, a customer's timeline from the event log, and staff
sign-out (API and browser)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.admin.timeline import CATEGORIES, category_of
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.admin.test_staff import login_link, sign_in
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def test_search_finds_a_customer_by_id_name_email_or_domain(api: Api) -> None:
    acme = await api.post("/v1/customers", {"name": "Acme Rockets", "email": "ops@acme.example"})
    await api.post("/v1/customers", {"name": "Globex", "email": "billing@globex.example"})
    odd = await api.post("/v1/customers", {"name": "100% Pure_Water", "email": "a@water.example"})

    def names(result: dict[str, Any]) -> list[str]:
        return [c["name"] for c in result["data"]]

    assert names(await api.get("/v1/customers", params={"q": "rocket"})) == ["Acme Rockets"]
    assert names(await api.get("/v1/customers", params={"q": "ACME.example"})) == ["Acme Rockets"]
    assert names(await api.get("/v1/customers", params={"q": acme["id"]})) == ["Acme Rockets"]
    assert names(await api.get("/v1/customers", params={"q": "billing@"})) == ["Globex"]
    # LIKE's wildcards are literal: `%` and `_` find only the name that has them.
    assert names(await api.get("/v1/customers", params={"q": "100%"})) == [odd["name"]]
    assert names(await api.get("/v1/customers", params={"q": "1_0"})) == []  # "100" if `_` were a wildcard
    assert names(await api.get("/v1/customers", params={"q": "nobody"})) == []
    await api.get("/v1/customers", params={"q": "x" * 201}, expect=422)


async def test_the_timeline_lists_the_customers_events_newest_first_in_pages(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    support, _ = await sign_in(api, db, clock, "sam@ops.example", "support")
    customer = (await api.post("/v1/customers", {"name": "Timely", "currency": "USD"}))["id"]
    other = (await api.post("/v1/customers", {"name": "Other", "currency": "USD"}))["id"]
    clock.advance(timedelta(minutes=1))
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    clock.advance(timedelta(minutes=1))
    await api.post(f"/v1/customers/{customer}/credit_grants", {"amount": 500, "currency": "USD"})
    clock.advance(timedelta(minutes=1))
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    await api.post("/v1/subscriptions", {"customer": other, "price": "basic_monthly"})

    page = await support.get(f"/v1/customers/{customer}/timeline")
    types = [(e["type"], e["category"], e["at"]) for e in page["data"]]
    assert types == [
        ("subscription.cancel_scheduled", "subscription", "2026-01-01T00:03:00Z"),
        # One instant, newest written first: the subscription's first invoice, then the subscription.
        ("invoice.finalized", "invoice", "2026-01-01T00:01:00Z"),
        ("invoice.created", "invoice", "2026-01-01T00:01:00Z"),
        ("subscription.created", "subscription", "2026-01-01T00:01:00Z"),
        ("customer.created", "customer", "2026-01-01T00:00:00Z"),
    ]
    assert page["has_more"] is False
    first = page["data"][0]
    assert first["subject"] == {"type": "subscription", "id": sub["id"]}
    assert first["actor"].startswith("key:")

    # Two at a time: the same entries, in the same order, across pages.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"starting_after": cursor} if cursor else {})}
        part = await support.get(f"/v1/customers/{customer}/timeline", params=params)
        seen += [e["id"] for e in part["data"]]
        if not part["has_more"]:
            break
        cursor = part["next_cursor"]
    assert seen == [e["id"] for e in page["data"]]

    only = await support.get(f"/v1/customers/{customer}/timeline", params={"category": "subscription"})
    assert [e["type"] for e in only["data"]] == ["subscription.cancel_scheduled", "subscription.created"]
    await support.get(f"/v1/customers/{customer}/timeline", params={"category": "bogus"}, expect=422)
    await support.get("/v1/customers/cus_missing/timeline", expect=404)
    bad = {"starting_after": "bm9wZQ"}  # "nope": no time, no seq
    await support.get(f"/v1/customers/{customer}/timeline", params=bad, expect=422)


def test_every_known_event_head_has_a_category() -> None:
    assert category_of("subscription.trial_ended") == "trial"
    assert category_of("user.signed_in") == "sign_in"
    assert category_of("user.erased") == "member"
    assert category_of("webhook_endpoint.created") == "other"
    assert all(category_of(f"{head}.x") == name for head, name in CATEGORIES.items())


async def test_sign_out_revokes_the_session_by_api_and_in_the_browser(
    api: Api, db: Database, clock: FrozenClock
) -> None:
    owner, _ = await sign_in(api, db, clock, "owner@ops.example", "owner")
    await owner.get("/v1/customers")
    await owner.delete("/v1/staff_sessions/current", expect=204)
    assert (await owner.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"
    assert (await owner.delete("/v1/staff_sessions/current", expect=401))["code"] == "staff_session_invalid"

    token = await login_link(db, clock, "owner@ops.example", "owner")
    client = api.client
    landed = await client.get(f"/admin/login/{token}", follow_redirects=False)
    cookie = landed.cookies["tg_staff"]
    staff_api = api.as_key(cookie)
    await staff_api.get("/v1/customers")
    client.cookies.set("tg_staff", cookie)
    # The sign-out form is CSRF-checked: a post without the page's token signs nobody out.
    assert (await client.post("/admin/logout", follow_redirects=False)).status_code == 403
    await staff_api.get("/v1/customers")
    console = await client.get("/admin")
    form_token = re.search(r'name="_csrf_token" value="([^"]+)"', console.text)
    assert form_token is not None, console.text[:500]
    out = await client.post(
        "/admin/logout", data={"_csrf_token": form_token.group(1)}, follow_redirects=False
    )
    assert out.status_code == 303 and out.headers["location"] == "/admin/sign-in"
    assert 'tg_staff=""' in out.headers["set-cookie"] or "tg_staff=;" in out.headers["set-cookie"]
    assert (await staff_api.get("/v1/customers", expect=401))["code"] == "staff_session_invalid"
