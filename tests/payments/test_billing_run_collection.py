"""The billing run collects per batch: after each batch of renewals/trial ends commits, the invoices it
finalised are charged (bounded concurrency, outside any transaction) before the next batch; the periodic
`collection` job running as well finds nothing left: one charge per invoice."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from gateway.billing.models import Invoice
from gateway.billing.run import billing_run
from gateway.payments.collection import Collector, billing_run_collection, collect_due
from gateway.payments.lookup import billing_config
from gateway.payments.models import Payment
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.service import PaymentSettings
from gateway.security.secretbox import box_for
from tests.payments.conftest import PayKit


async def counts(kit: PayKit) -> tuple[int, int]:
    async with kit.db.unit_of_work() as session:
        paid = await session.scalar(select(func.count()).select_from(Invoice).where(Invoice.status == "paid"))
        payments = await session.scalar(select(func.count()).select_from(Payment))
    return int(paid or 0), int(payments or 0)


async def test_each_batch_is_charged_before_the_next_and_the_collection_job_finds_nothing(
    kit: PayKit, demo: Any
) -> None:
    start = kit.clock.now()
    subscriptions = []
    for n in range(5):
        customer = await kit.customer(f"Batch {n}", currency="USD")
        await kit.method(customer, "card_ok")
        sub = await kit.api.post(
            "/v1/subscriptions",
            {"customer": customer, "price": "basic_monthly", "trial_days": 7, "trial_end_behavior": "cancel"},
        )
        subscriptions.append(sub["id"])
    assert await counts(kit) == (0, 0)
    kit.clock.set(start + timedelta(days=7, minutes=1))
    config = billing_config(kit.settings)
    collector = Collector(
        kit.db,
        kit.clock,
        ProviderRegistry(box_for(kit.settings)),
        config,
        PaymentSettings(),
        actor="system:collection",
    )
    collect = billing_run_collection(collector, concurrency=2, limit=10)
    after_each: list[tuple[int, int]] = []

    async def after_batch() -> None:
        await collect()
        after_each.append(await counts(kit))

    result = await billing_run(kit.db, kit.clock, config, batch_size=2, after_batch=after_batch)
    assert (result.subscriptions, result.batches) == (5, 3)
    # Paid invoices and payment rows after each batch: 2, then 4, then 5 (not all at the end).
    assert after_each == [(2, 2), (4, 4), (5, 5)]
    # The periodic job running as well (and the per-batch pass again): nothing left, nothing charged twice.
    assert await collect_due(collector) == 0
    assert await collect() == 0
    assert kit.provider.world.charges_made == 5
    for sub in subscriptions:
        [invoice] = (await kit.api.get("/v1/invoices", params={"subscription": sub}))["data"]
        assert (invoice["billing_reason"], invoice["status"], invoice["amount_remaining"]) == (
            "subscription_create",
            "paid",
            0,
        )
        [payment] = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
        assert (payment["status"], payment["attempt"], payment["amount"]) == (
            "succeeded",
            1,
            invoice["total"],
        )
