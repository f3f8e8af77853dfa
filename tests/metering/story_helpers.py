"""Shared setup of the metered-billing stories: a meter, a metered feature reading it, a plan that
includes N units with a per-call overage price, and a customer on a test clock."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count
from typing import Any

from litestar import Litestar

from tests.conftest import Api
from tests.entitlements.test_check_api import synced

_n = count(1)


def iso(*args: int) -> str:
    return datetime(*args, tzinfo=UTC).isoformat().replace("+00:00", "Z")


async def meter(api: Api, key: str, *, group_by: list[str] | None = None) -> str:
    """A `count` meter of `<key>.call` events."""
    await api.post(
        "/v1/meters",
        {"key": key, "event_type": f"{key}.call", "aggregation": "count", "group_by": group_by or []},
    )
    return key


async def metered_plan(
    api: Api,
    app: Litestar,
    *,
    included: int = 10_000,
    soft: bool = True,
    per_call: str = "0.2",  # minor units: $0.002 a call
    thresholds: list[int] | None = None,
    model: str = "usage",
    amounts: dict[str, Any] | None = None,
    group_by: list[str] | None = None,
    **price: Any,
) -> dict[str, str]:
    n = next(_n)
    meter_key = await meter(api, f"calls{n}", group_by=group_by)
    feature: dict[str, Any] = {"key": f"calls{n}", "name": "API calls", "kind": "metered", "meter": meter_key}
    if thresholds is not None:
        feature["alert_thresholds"] = thresholds
    await api.post("/v1/features", feature)
    product = (await api.post("/v1/products", {"name": f"Metered {n}"}))["id"]
    grants = [{"feature": f"calls{n}", "limit": included, "soft": soft}]
    await api.post("/v1/plans", {"product": product, "key": f"api{n}", "name": "API", "grants": grants})
    body = {
        "plan": f"api{n}",
        "model": model,
        "interval": "month",
        "usage_type": "metered",
        "currency_options": amounts or {"USD": {"unit_amount_decimal": per_call}},
        "metered_feature": f"calls{n}",
        "lookup_key": f"api{n}_monthly",
        "nickname": "API calls",
        **price,
    }
    created = await api.post("/v1/prices", body)
    return {"feature": f"calls{n}", "meter": meter_key, "price": created["id"], "plan": f"api{n}"}


async def subscribed(api: Api, price: str, start: datetime) -> dict[str, str]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": start.isoformat(), "name": "metered story"})
    customer = await api.post(
        "/v1/customers", {"name": "Meter Co", "currency": "USD", "test_clock": clock["id"]}
    )
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": price})
    await synced(api)
    return {"clock": clock["id"], "customer": customer["id"], "subscription": sub["id"]}


async def consume(api: Api, customer: str, feature: str, quantity: int) -> dict[str, Any]:
    body = {"customer": customer, "feature": feature, "quantity": quantity, "consume": True}
    result: dict[str, Any] = await api.post("/v1/check", body, expect=200)
    return result


async def reconcile(api: Api, customer: str) -> dict[str, Any]:
    result: dict[str, Any] = await api.post("/v1/usage_reconciliation", {"customer": customer}, expect=200)
    await synced(api)
    return result


async def advance(api: Api, clock: str, *to: int) -> None:
    await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": iso(*to)}, expect=201)
    await synced(api)


async def invoices_of(api: Api, customer: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/invoices", params={"customer": customer, "limit": 100})
    return list(page["data"])


def usage_lines(invoice: dict[str, Any]) -> list[tuple[str, int, int]]:
    return [
        (line["kind"], line["amount"], line["quantity"])
        for line in invoice["lines"]
        if line["kind"] == "usage"
    ]


async def send_calls(
    api: Api, customer: str, meter_key: str, ids: range, *, time: str | None = None, **data: Any
) -> dict[str, int]:
    """`count` events for the meter, in batches of 1,000 (ids make them unique: re-sending is a no-op)."""
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
    items = list(ids)
    for at in range(0, len(items), 1_000):
        events = []
        for i in items[at : at + 1_000]:
            event: dict[str, Any] = {
                "id": f"call-{i}",
                "source": "app",
                "type": f"{meter_key}.call",
                "subject": customer,
                "data": data,
            }
            if time is not None:
                event["time"] = time
            events.append(event)
        result = await api.post("/v1/usage_events", {"events": events}, expect=200)
        for k in totals:
            totals[k] += result[k]
    return totals
