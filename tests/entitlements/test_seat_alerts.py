"""Seats near and at the plan's limit: the seat that reaches 80 % and the one that reaches 100 % each raise
`usage.threshold_reached` with feature `seats` (the usage alert's webhook and mail), once per period —
taking a seat again after freeing one says nothing new; a refused member sends nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from tests.conftest import Api


async def seat_alerts(db: Database) -> list[dict[str, Any]]:
    async with db.unit_of_work() as session:
        rows = (
            await session.scalars(
                select(OutboxEvent)
                .where(OutboxEvent.type == "usage.threshold_reached")
                .order_by(OutboxEvent.seq)
            )
        ).all()
        return [r.data for r in rows if r.data.get("feature") == "seats"]


async def test_seats_at_80_and_100_percent_alert_once_each(api: Api, db: Database, demo: Any) -> None:
    customer = await api.post("/v1/customers", {"name": "Crowded", "currency": "USD", "country": "US"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly", "trial_days": 0})
    members = (await api.get(f"/v1/customers/{customer['id']}/members"))["data"]
    added: list[dict[str, Any]] = []
    while len(members) + len(added) < 10:  # Pro: 10 seats
        n = len(members) + len(added) + 1
        added.append(
            await api.post(
                f"/v1/customers/{customer['id']}/members",
                {"email": f"m{n}@crowded.example", "role": "editor"},
            )
        )
    alerts = await seat_alerts(db)
    assert [(a["percent"], a["used"], a["limit"], a["customer_id"]) for a in alerts] == [
        (80, 8, 10, customer["id"]),
        (100, 10, 10, customer["id"]),
    ]
    refused = await api.post(
        f"/v1/customers/{customer['id']}/members",
        {"email": "one-too-many@crowded.example", "role": "editor"},
        expect=409,
    )
    assert refused["code"] == "seat_limit_reached"
    await api.delete(f"/v1/customers/{customer['id']}/members/{added[-1]['id']}")
    await api.post(
        f"/v1/customers/{customer['id']}/members", {"email": "back@crowded.example", "role": "editor"}
    )
    assert len(await seat_alerts(db)) == 2  # once per threshold per period
