"""Shared setup of the metering tests: a customer and the meters the stories use."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def customer(api: Api, name: str = "Acme", **extra: Any) -> str:
    body = {"name": name, "currency": "USD", **extra}
    return str((await api.post("/v1/customers", body))["id"])


async def meter(
    api: Api, key: str, event_type: str, aggregation: str = "count", **extra: Any
) -> dict[str, Any]:
    body = {"key": key, "event_type": event_type, "aggregation": aggregation, **extra}
    result: dict[str, Any] = await api.post("/v1/meters", body)
    return result


def event(
    i: int | str, subject: str, *, type_: str = "api_call", time: str | None = None, **data: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"evt-{i}",
        "source": "app",
        "type": type_,
        "subject": subject,
        "data": data,
    }
    if time is not None:
        body["time"] = time
    return body


async def send(api: Api, events: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = await api.post("/v1/usage_events", {"events": events, **extra}, expect=200)
    return result


async def total(api: Api, customer_id: str, meter_key: str, start: str, end: str, **params: Any) -> str:
    usage = await api.get(
        "/v1/usage", params={"customer": customer_id, "meter": meter_key, "from": start, "to": end, **params}
    )
    totals = usage["data"][0]["totals"]
    return str(totals[0]["value"]) if totals else "0"
