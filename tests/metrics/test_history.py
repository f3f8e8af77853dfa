"""The dashboard's one pass over the MRR history (gateway/metrics/history.py) gives, at every instant,
exactly what the API's per-instant queries give: each customer's MRR just before it, who had MRR before
it, and each customer's first paid instant — over random histories with ties at the same instant,
changes at exactly a boundary, several subscriptions per customer and discounts either way."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from gateway.db.session import Database
from gateway.metrics.history import MrrHistory
from gateway.metrics.models import MrrChange
from gateway.metrics.service import MetricsService, Scope

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def random_history(rng: random.Random, n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(n):
        customer = rng.randrange(8)
        # A subscription lives in one currency and on one clock (or none), as the recorder writes them.
        currency, clock = rng.choice([("USD", None), ("USD", None), ("USD", "clock_1"), ("EUR", None)])
        gross = rng.choice([0, 900, 2900])
        rows.append(
            {
                "event_id": f"evt_{i}",
                "tenant_id": f"cus_{customer}",
                "subscription_id": f"sub_{customer}_{rng.randrange(2)}_{currency}_{clock}",
                "test_clock_id": clock,
                "currency": currency,
                # whole days: many changes share an instant, many fall exactly on a boundary
                "at": T0 + timedelta(days=rng.randrange(40)),
                "gross": gross,
                "discount": rng.choice([0, 0, 100]) if gross else 0,
                "status": "active",
                "event_type": "subscription.updated",
            }
        )
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_one_pass_equals_the_per_instant_queries(db: Database, seed: int) -> None:
    rng = random.Random(seed)
    async with db.unit_of_work() as session:
        await session.execute(insert(MrrChange), random_history(rng, 120))
    boundaries = [T0 + timedelta(days=d) for d in range(0, 42, 3)]
    async with db.unit_of_work() as session:
        service = MetricsService(session)
        for scope in (Scope("USD"), Scope("USD", "clock_1"), Scope("EUR", None, False)):
            history = await MrrHistory.load(session, scope)
            snapshots = history.snapshots(boundaries)
            for at in boundaries:
                assert snapshots[at].mrr == await service.mrr_by_customer(scope, at, before=True), (scope, at)
                assert snapshots[at].had_mrr == await service.customers_with_mrr_before(scope, at)
            assert history.first_paid() == await service.first_paid(scope)
