"""Concurrent writes to one subscription (issue 18): every read-modify-write holds the subscription's lock,
so a stale copy never overwrites a concurrent change; If-Match / ETag make a client's write conditional on
the version it read; `quantity_delta` adds seats relative to the count at the moment of the change.

Run on SQLite and, with TIERGATE_TEST_POSTGRES_URL, on PostgreSQL: the requests really run at once
(asyncio tasks against the app, each in its own transaction and connection).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gateway.billing.subscription_billing import SubscriptionBilling
from gateway.subscriptions.repository import SubscriptionRepository
from tests.conftest import Api


def iso(*args: int) -> str:
    return datetime(*args, tzinfo=UTC).isoformat().replace("+00:00", "Z")


async def on_clock(api: Api, *start: int) -> tuple[str, str]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": iso(*start), "name": "race"})
    customer = await api.post(
        "/v1/customers", {"name": "Race Co", "currency": "USD", "test_clock": clock["id"]}
    )
    return clock["id"], customer["id"]


async def invoices_of(api: Api, customer: str) -> list[dict[str, Any]]:
    return list((await api.get("/v1/invoices", params={"customer": customer, "limit": 100}))["data"])


async def events_of(api: Api, sub_id: str) -> list[tuple[str, int]]:
    page = await api.get("/v1/events", params={"aggregate": sub_id, "limit": 100})
    return [(e["type"], e["data"]["subscription"]["version"]) for e in page["data"]]


class AtOnce:
    """Sends requests on the app's own event loop, where they really run at the same time. (The test
    client runs each request to completion inside one blocking call into the app's loop, so requests sent
    through it, even from asyncio.gather, never overlap.)"""

    def __init__(self, api: Api) -> None:
        self.api = api

    def post(self, path: str, body: dict[str, Any], **headers: str) -> asyncio.Future[httpx.Response]:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.api.client.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
                auth = {"Authorization": f"Bearer {self.api.key}", **headers}
                return await client.post(path, json=body, headers=auth)

        return asyncio.wrap_future(self.api.client.blocking_portal.start_task_soon(send))


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, f"{response.request.url}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


async def until(event: threading.Event, seconds: float) -> bool:
    """Wait for `event` without blocking the event loop; False when `seconds` passed first."""
    for _ in range(int(seconds / 0.005)):
        if event.is_set():
            return True
        await asyncio.sleep(0.005)
    return event.is_set()


class PlanChangeHeldOpen:
    """Holds a plan change's transaction open, after its write and before its commit, until a test-clock
    advance has read its due subscriptions (or, once fixed, waits for the row the plan change holds):
    the interleaving of the issue, made certain instead of left to timing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # threading events, polled: the app under test may run on another event loop (in another thread)
        # than the test body, and an asyncio.Event must not be set from a foreign loop.
        self.applied = threading.Event()
        self.advance_read = threading.Event()
        on_event, due = SubscriptionBilling.on_event, SubscriptionRepository.due

        async def held_on_event(
            billing: SubscriptionBilling, sub: Any, type_: str, at: Any, data: Any
        ) -> None:
            await on_event(billing, sub, type_, at, data)
            if type_ == "subscription.plan_changed" and not data.get("scheduled"):
                self.applied.set()
                await until(self.advance_read, 0.5)

        async def watched_due(repo: SubscriptionRepository, *args: Any, **kwargs: Any) -> Any:
            rows = await due(repo, *args, **kwargs)
            if (
                kwargs.get("test_clock_id") and self.applied.is_set()
            ):  # the racing advance, not an earlier one
                self.advance_read.set()
            return rows

        monkeypatch.setattr(SubscriptionBilling, "on_event", held_on_event)
        monkeypatch.setattr(SubscriptionRepository, "due", watched_due)


async def test_an_advance_racing_a_plan_change_bills_the_new_plan(
    api: Api, demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's race, five times: Pro from Apr 1, clock at Apr 20; the upgrade to Enterprise
    (always_invoice) is in flight when the clock is advanced to May 2. The renewal must see the upgrade:
    the May invoice is Enterprise's $99.00, and the versions of the events follow each other."""
    for _ in range(5):
        gate = PlanChangeHeldOpen(monkeypatch)
        clock, customer = await on_clock(api, 2027, 4, 1)
        sub = await api.post(
            "/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0}
        )
        await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(2027, 4, 20)})

        at_once = AtOnce(api)
        change = at_once.post(
            f"/v1/subscriptions/{sub['id']}/plan_change",
            {"price": "enterprise_monthly", "proration_behavior": "always_invoice"},
        )
        assert await until(gate.applied, 10)
        advance = at_once.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(2027, 5, 2)})
        changed, advanced = created(await change), created(await advance)

        assert changed["version"] == 2 and advanced["steps_applied"] == 1
        after = await api.get(f"/v1/subscriptions/{sub['id']}")
        assert (after["price"], after["version"]) == (changed["price"], 3)
        assert after["current_period_start"].startswith("2027-05-01")
        assert await events_of(api, sub["id"]) == [
            ("subscription.created", 1),
            ("subscription.plan_changed", 2),
            ("subscription.renewed", 3),
        ]
        invoices = await invoices_of(api, customer)
        # $29 for April; Enterprise − Pro for the 11 of 30 days left (+$36.30 − $10.63); May on Enterprise.
        assert [(i["billing_reason"], i["total"]) for i in invoices] == [
            ("subscription_create", 2900),
            ("subscription_update", 2567),
            ("subscription_cycle", 9900),
        ]
        assert [line["description"] for line in invoices[-1]["lines"]] == [
            "Enterprise (May 01, 2027 - Jun 01, 2027)"
        ]
        monkeypatch.undo()


async def test_an_advance_and_a_plan_change_at_once_stay_consistent(api: Api, demo: Any) -> None:
    """The same two requests released together, with no ordering forced: whichever commits first, the
    other sees it — the renewal invoice bills the plan the `renewed` event carries, and every event has
    the next version."""
    for _ in range(5):
        clock, customer = await on_clock(api, 2027, 4, 1)
        sub = await api.post(
            "/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0}
        )
        await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(2027, 4, 20)})
        at_once = AtOnce(api)
        responses = await asyncio.gather(
            at_once.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(2027, 5, 2)}),
            at_once.post(
                f"/v1/subscriptions/{sub['id']}/plan_change",
                {"price": "enterprise_monthly", "proration_behavior": "always_invoice"},
            ),
        )
        assert [r.status_code for r in responses] == [201, 201]
        page = await api.get("/v1/events", params={"aggregate": sub["id"], "limit": 100})
        events = page["data"]
        assert [e["data"]["subscription"]["version"] for e in events] == [1, 2, 3]
        renewed = next(e for e in events if e["type"] == "subscription.renewed")
        prices = await api.get("/v1/prices", params={"limit": 100})
        amount = next(
            p["currency_options"]["USD"]["unit_amount"]
            for p in prices["data"]
            if p["id"] == renewed["data"]["subscription"]["price"]
        )
        cycle = [i for i in await invoices_of(api, customer) if i["billing_reason"] == "subscription_cycle"]
        assert [i["total"] for i in cycle] == [int(amount)]
        enterprise = next(p["id"] for p in prices["data"] if p["lookup_key"] == "enterprise_monthly")
        after = await api.get(f"/v1/subscriptions/{sub['id']}")
        assert (after["version"], after["price"]) == (3, enterprise)


# -- seats: quantity_delta, If-Match / ETag -----------------------------------------------------------
async def per_seat_subscription(api: Api, seats: int) -> tuple[str, str, dict[str, Any]]:
    """$10 a seat a month, on a test clock at Apr 1 2026 advanced to Apr 16 (half of April left)."""
    product = (await api.post("/v1/products", {"name": "Seats"}))["id"]
    await api.post("/v1/plans", {"product": product, "key": "team", "name": "Team", "rank": 1})
    await api.post(
        "/v1/prices",
        {
            "plan": "team",
            "model": "per_seat",
            "interval": "month",
            "currency_options": {"USD": {"unit_amount": 1000}},
            "lookup_key": "team_month",
        },
    )
    clock, customer = await on_clock(api, 2026, 4, 1)
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer, "price": "team_month", "quantity": seats}
    )
    await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(2026, 4, 16)})
    return clock, customer, sub


async def pending_amounts(api: Api, customer: str) -> list[int]:
    page = await api.get("/v1/invoice_items", params={"customer": customer, "pending": "true", "limit": 100})
    return [item["amount"] for item in page["data"]]


async def test_ten_concurrent_seat_additions_all_count(api: Api, demo: Any) -> None:
    _, customer, sub = await per_seat_subscription(api, 5)
    path = f"/v1/subscriptions/{sub['id']}/quantity"

    at_once = AtOnce(api)
    results = [
        created(r)
        for r in await asyncio.gather(*(at_once.post(path, {"quantity_delta": 1}) for _ in range(10)))
    ]

    assert sorted(r["quantity"] for r in results) == list(range(6, 16))
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["quantity"], after["version"]) == (15, 11)
    # Each added seat is prorated for the half of April left: $10 × 15/30 = $5.00, ten times.
    assert await pending_amounts(api, customer) == [500] * 10
    page = await api.get(
        "/v1/events", params={"aggregate": sub["id"], "type": "subscription.quantity_changed"}
    )
    changes = [(e["data"]["previous_quantity"], e["data"]["subscription"]["quantity"]) for e in page["data"]]
    assert changes == [(q, q + 1) for q in range(5, 15)]


async def test_quantity_delta_refuses_what_it_cannot_apply(api: Api, demo: Any) -> None:
    _, customer, sub = await per_seat_subscription(api, 2)
    path = f"/v1/subscriptions/{sub['id']}/quantity"
    below = await api.post(path, {"quantity_delta": -2}, expect=422)
    assert (below["code"], below["field"]) == ("quantity_out_of_range", "quantity_delta")
    both = await api.post(path, {"quantity": 3, "quantity_delta": 1}, expect=422)
    assert (both["code"], both["field"]) == ("validation_failed", "quantity")
    neither = await api.post(path, {}, expect=422)
    assert neither["code"] == "validation_failed"
    zero = await api.post(path, {"quantity_delta": 0}, expect=422)
    assert (zero["code"], zero["field"]) == ("validation_failed", "quantity_delta")
    removed = await api.post(path, {"quantity_delta": -1})
    assert removed["quantity"] == 1
    assert await pending_amounts(api, customer) == [-500]  # one seat's unused half of April credited


async def test_every_subscription_response_carries_its_version_as_etag(api: Api, demo: Any) -> None:
    _, _, sub = await per_seat_subscription(api, 2)
    response = await api.client.get(
        f"/v1/subscriptions/{sub['id']}", headers={"Authorization": f"Bearer {api.key}"}
    )
    assert response.headers["etag"] == f'"{sub["version"]}"' == f'"{response.json()["version"]}"'
    created = await api.client.post(
        "/v1/subscriptions/" + sub["id"] + "/quantity",
        json={"quantity_delta": 1},
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert created.status_code == 201 and created.headers["etag"] == f'"{sub["version"] + 1}"'


async def test_if_match_with_a_stale_version_is_412_and_changes_nothing(api: Api, demo: Any) -> None:
    _, customer, sub = await per_seat_subscription(api, 2)
    path = f"/v1/subscriptions/{sub['id']}/quantity"
    read = f'"{sub["version"]}"'
    first = await api.post(path, {"quantity_delta": 1}, headers={"If-Match": read})
    assert first["version"] == sub["version"] + 1

    response = await api.client.post(
        path, json={"quantity_delta": 1}, headers={"Authorization": f"Bearer {api.key}", "If-Match": read}
    )
    assert response.status_code == 412
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert (problem["code"], problem["current_version"]) == ("precondition_failed", sub["version"] + 1)
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["quantity"], after["version"]) == (3, sub["version"] + 1)
    assert await pending_amounts(api, customer) == [500]  # the refused write prorated nothing

    # Other writes honour it too; `*` and the current ETag pass; a weak or malformed tag does not.
    cancel = f"/v1/subscriptions/{sub['id']}/cancel"
    stale = await api.post(cancel, {"at_period_end": True}, headers={"If-Match": read}, expect=412)
    assert stale["code"] == "precondition_failed"
    weak = await api.post(
        cancel, {"at_period_end": True}, headers={"If-Match": f'W/"{after["version"]}"'}, expect=412
    )
    assert weak["code"] == "precondition_failed"
    malformed = await api.post(cancel, {"at_period_end": True}, headers={"If-Match": "3"}, expect=422)
    assert (malformed["code"], malformed["field"]) == ("validation_failed", "If-Match")
    current = f'"{after["version"]}", "999"'
    canceled = await api.post(cancel, {"at_period_end": True}, headers={"If-Match": current})
    assert (canceled["cancel_at_period_end"], canceled["version"]) == (True, after["version"] + 1)
    undone = await api.post(f"/v1/subscriptions/{sub['id']}/undo_cancel", headers={"If-Match": "*"})
    assert undone["cancel_at_period_end"] is False


async def test_openapi_documents_if_match_etag_and_412(api: Api) -> None:
    spec = await api.get("/docs/openapi.json")
    operation = spec["paths"]["/v1/subscriptions/{subscription_id}/quantity"]["post"]
    assert "If-Match" in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert "412" in operation["responses"]
    assert "ETag" in operation["responses"]["201"]["headers"]
    schema = spec["components"]["schemas"]
    quantity_change = next(v for k, v in schema.items() if k.endswith("QuantityChange"))
    assert set(quantity_change["properties"]) == {"quantity", "quantity_delta", "proration_behavior"}
