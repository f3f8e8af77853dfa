"""Invoice numbers: assigned at finalisation, sequential without gaps, safe under concurrency (rule 21)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from gateway.billing.domain import BillingReason, DraftLine, LineKind
from gateway.billing.wiring import BillingConfig, billing_services
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.money import Money

AT = datetime(2026, 6, 1, tzinfo=UTC)


async def _drafts(db: Database, n: int) -> tuple[str, list[str]]:
    clock = FrozenClock(AT)
    async with db.unit_of_work() as session:
        services = billing_services(session, clock, BillingConfig())
        customer = await services.customers.create(name="Numbered", currency="USD")
        ids = []
        for i in range(n):
            invoice = await services.invoices.create_draft(
                customer,
                "USD",
                [DraftLine(LineKind.ONE_TIME, f"charge {i}", Money(100 + i, "USD"))],
                at=AT,
                reason=BillingReason.MANUAL,
            )
            ids.append(invoice.id)
    return customer.id, ids


async def _finalize(db: Database, invoice_id: str, *, fail: bool = False) -> str | None:
    clock = FrozenClock(AT)
    try:
        async with db.unit_of_work() as session:
            services = billing_services(session, clock, BillingConfig())
            invoice = await services.invoices.get(invoice_id, scope=None, for_update=True)
            customer = await services.customers.get(invoice.tenant_id)
            await services.invoices.finalize(invoice, customer, AT)
            if fail:
                raise RuntimeError("crash after taking a number")
            return invoice.number
    except RuntimeError:
        return None


async def test_drafts_have_no_number_and_finalisation_numbers_them_in_order(db: Database) -> None:
    _, ids = await _drafts(db, 3)
    numbers = [await _finalize(db, i) for i in ids]
    assert numbers == ["TG-2026-000001", "TG-2026-000002", "TG-2026-000003"]


async def test_a_rolled_back_finalisation_leaves_no_gap(db: Database) -> None:
    _, ids = await _drafts(db, 3)
    assert await _finalize(db, ids[0]) == "TG-2026-000001"
    assert await _finalize(db, ids[1], fail=True) is None
    assert await _finalize(db, ids[2]) == "TG-2026-000002"
    assert await _finalize(db, ids[1]) == "TG-2026-000003"


async def test_concurrent_finalisations_get_unique_gapless_numbers(db: Database) -> None:
    _, ids = await _drafts(db, 12)
    numbers = await asyncio.gather(*(_finalize(db, i) for i in ids))
    assert sorted(n for n in numbers if n) == [f"TG-2026-{k:06d}" for k in range(1, 13)]
