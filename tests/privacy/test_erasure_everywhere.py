"""Erasure reaches every store that keeps a copy of a user's personal data (issue 18), one test per store
listed in gateway/provisioning/README.md: SCIM attributes, invites, sessions, outbox events, audit entries,
webhook deliveries' stored payloads, Idempotency-Key replays."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select

from gateway.config import Settings
from gateway.db.outbox import record_event
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.events import DomainEvent
from gateway.notifications.models import WebhookDelivery
from gateway.provisioning.privacy import pseudonym
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle
from tests.scim.helpers import USER, Scim, scim_tenant

EMAIL = "ann@acme.example"
HOME_EMAIL = "ann.smith@home.example"  # a second address the IdP sent
NAME = "Ann Smith"
PERSONAL = (EMAIL, HOME_EMAIL, NAME, "okta-ann-42")


@pytest.fixture
def settings() -> Settings:
    # The test endpoint listens on loopback over http: allowed explicitly (production refuses both).
    return manual_settings(webhook_allow_http=True, webhook_allow_private_targets=True)


@dataclass
class Erased:
    customer: str
    other: str
    user: str
    scim_user: str
    scim: Scim
    invite_body: dict[str, Any]


def mentions_personal_data(document: Any) -> list[str]:
    text = json.dumps(document).lower()
    return [p for p in PERSONAL if p.lower() in text]


async def erase_a_scim_user(api: Api, app: Litestar, db: Database, clock: FrozenClock) -> Erased:
    """Ann is provisioned by her company's IdP (SCIM, with names, two addresses and an externalId) and
    invited by another tenant (with an Idempotency-Key); a webhook endpoint listens to member events;
    then a platform key erases her."""
    customer, token = await scim_tenant(api, "pro_monthly")
    scim = Scim(api, token)
    created = await scim.call(
        "POST",
        "/Users",
        {
            "schemas": [USER],
            "userName": EMAIL,
            "externalId": "okta-ann-42",
            "name": {"givenName": "Ann", "familyName": "Smith", "formatted": NAME},
            "displayName": NAME,
            "emails": [{"value": EMAIL, "primary": True}, {"value": HOME_EMAIL, "type": "home"}],
        },
        expect=201,
    )
    user = next(
        m["user"] for m in (await api.get(f"/v1/customers/{customer}/members"))["data"] if m["email"] == EMAIL
    )
    other = (await api.post("/v1/customers", {"name": "Other", "currency": "USD"}))["id"]
    await api.post("/v1/subscriptions", {"customer": other, "price": "pro_monthly", "trial_days": 0})
    invite_body = {"email": EMAIL, "role": "viewer"}
    await api.post(f"/v1/customers/{other}/invites", invite_body, headers={"Idempotency-Key": "invite-ann"})
    await api.post(
        "/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hooks", "enabled_events": ["member.*"]}
    )
    # A member event whose payload names the address (as an older event version or an integration's own
    # event type may): its delivery stores the payload until it is sent.
    async with db.unit_of_work() as session:
        await record_event(
            session,
            DomainEvent(
                "member.added",
                "membership",
                created["id"],
                clock.now(),
                data={"user": user, "role": "viewer", "email": EMAIL, "name": NAME},
                tenant_id=customer,
            ),
        )
    await settle(api, app)

    erased = await api.post(f"/v1/users/{user}/erase", {}, expect=200)
    assert erased["email"] == pseudonym(user)
    await settle(api, app)
    return Erased(customer, other, user, created["id"], scim, invite_body)


async def test_scim_attributes_are_erased(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    erased = await erase_a_scim_user(api, app, db, clock)
    shown = await erased.scim.call("GET", f"/Users/{erased.scim_user}", expect=200)
    assert shown["userName"] == pseudonym(erased.user)
    assert shown["active"] is False
    assert [k for k in ("emails", "name", "displayName", "externalId") if shown.get(k)] == []
    assert mentions_personal_data(shown) == []
    by_external_id = await erased.scim.call(
        "GET", "/Users", params={"filter": 'externalId eq "okta-ann-42"'}, expect=200
    )
    assert by_external_id["totalResults"] == 0


async def test_invites_are_pseudonymised(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    erased = await erase_a_scim_user(api, app, db, clock)
    invites = (await api.get(f"/v1/customers/{erased.other}/invites"))["data"]
    assert [i["email"] for i in invites] == [pseudonym(erased.user)]


async def test_sessions_are_ended(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    sessions = app.state.sessions
    customer, token = await scim_tenant(api, "pro_monthly")
    await Scim(api, token).call("POST", "/Users", {"schemas": [USER], "userName": EMAIL}, expect=201)
    user = (await api.get(f"/v1/customers/{customer}/members"))["data"][0]["user"]
    session_id = await sessions.create(
        user_id=user, tenant_id=customer, data={"email": EMAIL}, ttl_seconds=3600
    )
    assert (await sessions.get(session_id)).data == {"email": EMAIL}
    erased = await api.post(f"/v1/users/{user}/erase", {}, expect=200)
    assert erased["sessions_ended"] == 1
    assert await sessions.get(session_id) is None


async def test_outbox_events_are_scrubbed(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    erased = await erase_a_scim_user(api, app, db, clock)
    [invited] = (await api.get("/v1/events", params={"type": "invite.created"}))["data"]
    assert invited["data"]["email"] == pseudonym(erased.user)
    events = (await api.get("/v1/events", params={"limit": 100}))["data"]
    assert mentions_personal_data(events) == []


async def test_audit_entries_name_ids_not_addresses(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    erased = await erase_a_scim_user(api, app, db, clock)
    log = (await api.get("/v1/audit_log", params={"limit": 100}))["data"]
    [invited] = [e for e in log if e["action"] == "invite.created"]
    assert "email" not in invited["data"] and invited["target"].startswith("invite:inv_")
    assert mentions_personal_data(log) == []
    assert "user.erased" in [e["action"] for e in log if e["customer"] == erased.customer]


async def test_webhook_payloads_are_scrubbed(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    erased = await erase_a_scim_user(api, app, db, clock)
    async with db.unit_of_work() as session:
        payloads = (await session.scalars(select(WebhookDelivery.payload))).all()
    assert len(payloads) >= 2  # member.added (with the address), member.removed by the erasure
    assert [mentions_personal_data(json.loads(p)) for p in payloads] == [[] for _ in payloads]
    assert any(pseudonym(erased.user) in p for p in payloads)


async def test_idempotency_replays_are_scrubbed(
    api: Api, app: Litestar, db: Database, clock: FrozenClock, demo: Any
) -> None:
    erased = await erase_a_scim_user(api, app, db, clock)
    response = await api.client.post(
        f"/v1/customers/{erased.other}/invites",
        json=erased.invite_body,
        headers={"Authorization": f"Bearer {api.key}", "Idempotency-Key": "invite-ann"},
    )
    assert (response.status_code, response.headers.get("idempotent-replayed")) == (201, "true")
    assert response.json()["email"] == pseudonym(erased.user)
    assert mentions_personal_data(response.json()) == []
