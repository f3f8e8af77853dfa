"""Issue 10: two workers charging the same invoices at once charge each exactly once.

Tiergate and the sandbox are served over HTTP on loopback ports (PostgreSQL underneath). Twenty customers
save a good card; twenty invoices are finalised open. Then two collectors, each with its own database
engine (its own connections, like two worker processes), walk the same twenty invoices at the same time,
as `collect_due` does. The invoice's row lock and the unique (invoice, attempt) let one claim win per
invoice: twenty charges at the provider, one succeeded payment per invoice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.errors import Conflict
from gateway.payments.runtime import PaymentsRuntime
from gateway.payments.service import PaymentSettings
from gateway.security.secretbox import box_for
from tests.conftest import IN_CI, POSTGRES_URL
from tests.payments.test_sandbox_stories import TIMEOUT, World, world_on

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL and not IN_CI, reason="needs PostgreSQL (always in CI)"),
]

INVOICES = 20


@pytest.fixture
async def world(postgres_db: Database, clock: FrozenClock, settings: Settings) -> AsyncIterator[World]:
    async with world_on(postgres_db, clock, settings) as w:
        yield w


async def test_two_collectors_at_once_charge_each_invoice_exactly_once(world: World) -> None:
    invoices: list[dict[str, Any]] = []
    for n in range(INVOICES):
        customer = await world.customer(f"Customer {n}")
        await world.method(customer, "card_ok")
        # Not auto-advanced: the app's own relay leaves them to the two collectors below.
        invoices.append(await world.invoice(customer, 1_000 + n, auto=False))
    assert {i["status"] for i in invoices} == {"open"}
    ids = [i["id"] for i in invoices]

    engines = [Database(POSTGRES_URL, pooled=False) for _ in range(2)]
    start = asyncio.Event()

    async def worker(db: Database) -> int:
        collector = PaymentsRuntime(
            db,
            world.clock,
            box_for(world.settings),
            settings=PaymentSettings(provider_timeout_seconds=TIMEOUT * 4),
        ).collector()
        await start.wait()
        charged = 0
        for invoice_id in ids:  # as collect_due walks what is due
            try:
                if await collector.collect(invoice_id, require_method=False) is not None:
                    charged += 1
            except Conflict:
                continue  # the other worker holds or has paid it
        return charged

    try:
        tasks = [asyncio.create_task(worker(db)) for db in engines]
        await asyncio.sleep(0)
        start.set()
        charged = await asyncio.gather(*tasks)
    finally:
        for db in engines:
            await db.dispose()
    assert sum(charged) == INVOICES

    for n, invoice_id in enumerate(ids):
        paid = await world.api.get(f"/v1/invoices/{invoice_id}")
        assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 1_000 + n, 0)
        payments = await world.payments(invoice_id)
        assert [(p["status"], p["amount"], p["attempt"]) for p in payments] == [("succeeded", 1_000 + n, 1)]
    # One charge per invoice at the provider (each invoice has its own amount).
    charges = (await world.sandbox.get("/v1/payments")).json()["data"]
    assert sorted(c["amount"] for c in charges) == [1_000 + n for n in range(INVOICES)]
