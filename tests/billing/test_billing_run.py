"""The billing run (rule 3, issue 4 "The billing run"): every due subscription renewed and invoiced once
per period, whatever happens around it: a rerun, two workers at once, a worker killed mid-run, or a
renewal invoiced twice behind the claim's back.

Subscriptions are made through the billed subscription service on a clock in December 2025, so their
first period ends on 2026-01-10 and their renewal invoices are the first numbers of 2026:
TG-2026-000001 … TG-2026-00000N, with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.billing.domain import BillingReason
from gateway.billing.models import Invoice, InvoiceLine, NumberSequence
from gateway.billing.run import RunResult, billing_run
from gateway.billing.wiring import BillingConfig, billed_subscriptions, billing_services
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.kernel.clock import FrozenClock
from gateway.kernel.ids import new_id
from gateway.kernel.money import Money
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.repository import SubscriptionRepository, UnlockedSubscriptionWrite
from tests.conftest import IN_CI, POSTGRES_URL, _prepare_postgres

CATALOG_AT = datetime(2025, 12, 1, tzinfo=UTC)
CREATED_AT = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)
PERIOD_START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)  # the renewal: end of the first period
PERIOD_END = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
RUN_AT = datetime(2026, 1, 20, tzinfo=UTC)
CONFIG = BillingConfig()
ROOT = Path(__file__).resolve().parents[2]


async def seed(db: Database, n: int, *, chunk: int = 100) -> list[str]:
    """The demo catalog and `n` customers on basic_monthly (900 USD), made through the services."""
    clock = FrozenClock(CATALOG_AT)
    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    clock.set(CREATED_AT)
    ids: list[str] = []
    for first in range(0, n, chunk):
        async with db.unit_of_work() as session:
            customers = CustomerService(CustomerRepository(session), clock)
            subscriptions = billed_subscriptions(session, clock, CONFIG)
            for i in range(first, min(n, first + chunk)):
                customer = await customers.create(name=f"Customer {i}", currency="USD", country="US")
                sub = await subscriptions.create(customer_id=customer.id, price="basic_monthly")
                ids.append(sub.id)
    return ids


async def clone(db: Database, sub_id: str, copies: int) -> list[str]:
    """`copies` more customers and subscriptions, row for row like `sub_id` and its customer (made by the
    services), with fresh ids: a bulk INSERT, for the tests that need thousands due at once."""
    async with db.unit_of_work() as session:
        sub = await session.get(Subscription, sub_id)
        assert sub is not None
        customer = await session.get(Customer, sub.tenant_id)
        assert customer is not None
        sub_row, customer_row = _row(sub), _row(customer)
    customers, subs = [], []
    for i in range(copies):
        tenant = new_id("cus")
        customers.append({**customer_row, "id": tenant, "name": f"Clone {i}"})
        subs.append({**sub_row, "id": new_id("sub"), "tenant_id": tenant})
    async with db.engine.begin() as conn:
        await conn.execute(insert(Customer.metadata.tables["customers"]), customers)
        await conn.execute(insert(Subscription.metadata.tables["subscriptions"]), subs)
    return [sub_id, *(s["id"] for s in subs)]


def _row(row: Any) -> dict[str, Any]:
    """Column values by table column key (`metadata`, not the attribute `metadata_`)."""
    return {p.columns[0].key: getattr(row, p.key) for p in row.__mapper__.column_attrs}


async def renewals(db: Database) -> list[Invoice]:
    async with db.unit_of_work() as session:
        query = select(Invoice).where(Invoice.billing_reason == BillingReason.SUBSCRIPTION_CYCLE.value)
        return list((await session.scalars(query.order_by(Invoice.number))).all())


async def count_renewals(db: Database) -> int:
    async with db.unit_of_work() as session:
        query = select(func.count()).where(Invoice.billing_reason == BillingReason.SUBSCRIPTION_CYCLE.value)
        return int(await session.scalar(query.select_from(Invoice)) or 0)


async def sequence_value(db: Database, name: str) -> int | None:
    async with db.unit_of_work() as session:
        row = await session.get(NumberSequence, name)
        return row.last_value if row else None


def numbers(n: int, year: int = 2026) -> list[str]:
    return [f"TG-{year}-{i:06d}" for i in range(1, n + 1)]


async def assert_renewed_once(db: Database, sub_ids: list[str]) -> None:
    """Exactly one renewal invoice per subscription period, 900 USD each, numbered 1..N in 2026."""
    invoices = await renewals(db)
    assert sorted(i.subscription_id or "" for i in invoices) == sorted(sub_ids)
    assert sorted(i.number or "" for i in invoices) == numbers(len(sub_ids))
    assert {i.period_key for i in invoices} == {f"{s}:{PERIOD_START.isoformat()}" for s in sub_ids}
    for invoice in invoices:
        assert (invoice.status, invoice.currency, invoice.subtotal, invoice.total) == (
            "open",
            "USD",
            900,
            900,
        )
        assert (invoice.amount_due, invoice.amount_remaining, invoice.tax_total) == (900, 900, 0)
        assert (invoice.period_start, invoice.period_end) == (PERIOD_START, PERIOD_END)
        assert invoice.created_at == invoice.finalized_at == PERIOD_START
    assert await sequence_value(db, "invoice:TG:2026") == len(sub_ids)
    async with db.unit_of_work() as session:
        subs = (await session.scalars(select(Subscription).where(Subscription.id.in_(sub_ids)))).all()
        assert {(s.current_period_start, s.current_period_end, s.next_action_at) for s in subs} == {
            (PERIOD_START, PERIOD_END, PERIOD_END)
        }
        renewed = await session.scalar(
            select(func.count())
            .select_from(OutboxEvent)
            .where(OutboxEvent.type == "subscription.renewed", OutboxEvent.aggregate_id.in_(sub_ids))
        )
        assert renewed == len(sub_ids)
        lines = await session.scalar(
            select(func.count())
            .select_from(InvoiceLine)
            .where(InvoiceLine.invoice_id.in_([i.id for i in invoices]))
        )
        assert lines == len(sub_ids)  # one line each: "Basic", 900


# -- both backends -------------------------------------------------------------------------------
async def test_run_renews_each_due_subscription_once_with_gapless_numbers(db: Database) -> None:
    subs = await seed(db, 25)
    # The signup invoices were numbered in 2025; the renewals start 2026's sequence at 1.
    assert await sequence_value(db, "invoice:TG:2025") == 25
    assert await count_renewals(db) == 0

    result = await billing_run(db, FrozenClock(RUN_AT), CONFIG, batch_size=10)

    assert (result.subscriptions, result.steps, result.batches) == (25, 25, 3)
    await assert_renewed_once(db, subs)
    first = (await renewals(db))[0]
    async with db.unit_of_work() as session:
        line = (await session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == first.id))).one()
    assert (line.kind, line.amount, line.net_amount, line.quantity) == ("subscription", 900, 900, 1)
    assert (line.period_start, line.period_end) == (PERIOD_START, PERIOD_END)
    assert line.description == "Basic (Jan 10, 2026 - Feb 10, 2026)"


async def test_a_renewal_that_credit_pays_in_full_inside_a_batch_is_paid_and_the_run_goes_on(
    db: Database,
) -> None:
    """A renewal invoice that owes nothing (credit covers it) is marked paid at the batch's end. The
    batch writes new invoices with one bulk INSERT, so their in-memory copies lacked the column defaults:
    `amount_paid` was None and marking it paid failed the whole run, again at every run (found by the
    two-worker scale-out test)."""
    covered, plain = await seed(db, 2)
    clock = FrozenClock(CREATED_AT)
    async with db.unit_of_work() as session:
        sub = await session.get(Subscription, covered)
        assert sub is not None
        customer = await session.get(Customer, sub.tenant_id)
        assert customer is not None
        billing = billing_services(session, clock, CONFIG)
        await billing.invoices.grant_credit(
            customer, Money(900, "USD"), at=CREATED_AT, description="goodwill"
        )

    result = await billing_run(db, FrozenClock(RUN_AT), CONFIG)

    assert (result.subscriptions, result.steps) == (2, 2)
    invoices = await renewals(db)
    assert sorted(i.subscription_id or "" for i in invoices) == sorted([covered, plain])
    assert sorted(i.number or "" for i in invoices) == numbers(2)
    async with db.unit_of_work() as session:
        rows = (
            await session.scalars(select(Invoice).where(Invoice.billing_reason == "subscription_cycle"))
        ).all()
        by_sub = {row.subscription_id: row for row in rows}
    paid = by_sub[covered]
    assert (paid.status, paid.credit_applied, paid.amount_paid, paid.amount_remaining) == ("paid", 900, 0, 0)
    owed = by_sub[plain]
    assert (owed.status, owed.credit_applied, owed.amount_paid, owed.amount_remaining) == ("open", 0, 0, 900)


async def test_a_second_run_at_the_same_time_does_nothing(db: Database) -> None:
    subs = await seed(db, 12)
    clock = FrozenClock(RUN_AT)
    await billing_run(db, clock, CONFIG, batch_size=5)
    before = [(i.id, i.number, i.version) for i in await renewals(db)]

    again = await billing_run(db, clock, CONFIG, batch_size=5)

    assert (again.subscriptions, again.steps, again.batches) == (0, 0, 0)
    assert [(i.id, i.number, i.version) for i in await renewals(db)] == before
    # Just before the next period end there is still nothing to do; at it, the next renewal (and only it).
    assert (await billing_run(db, clock, CONFIG, at=PERIOD_END - timedelta(seconds=1))).steps == 0
    assert await sequence_value(db, "invoice:TG:2026") == len(subs)
    at_end = await billing_run(db, clock, CONFIG, at=PERIOD_END)
    assert (at_end.subscriptions, at_end.steps) == (len(subs), len(subs))
    assert await count_renewals(db) == 2 * len(subs)
    assert await sequence_value(db, "invoice:TG:2026") == 2 * len(subs)


async def test_max_batches_stops_early_and_the_next_run_finishes_the_rest(db: Database) -> None:
    subs = await seed(db, 12)
    clock = FrozenClock(RUN_AT)

    part = await billing_run(db, clock, CONFIG, batch_size=5, max_batches=1)
    assert (part.subscriptions, part.steps, part.batches) == (5, 5, 1)
    assert await count_renewals(db) == 5

    rest = await billing_run(db, clock, CONFIG, batch_size=5)
    assert (rest.subscriptions, rest.steps, rest.batches) == (7, 7, 2)
    await assert_renewed_once(db, subs)


async def test_a_run_late_by_two_periods_bills_each_period_once(db: Database) -> None:
    subs = await seed(db, 3)
    result = await billing_run(db, FrozenClock(PERIOD_END + timedelta(days=1)), CONFIG)
    assert (result.subscriptions, result.steps, result.batches) == (3, 6, 1)
    invoices = await renewals(db)
    assert sorted((i.subscription_id, i.period_start) for i in invoices) == sorted(
        (s, start) for s in subs for start in (PERIOD_START, PERIOD_END)
    )
    assert sorted(i.number or "" for i in invoices) == numbers(6)
    assert {i.total for i in invoices} == {900}


async def test_the_period_key_refuses_a_second_renewal_invoice_for_one_period(db: Database) -> None:
    """The claim is one guard, the unique key the other: hearing the same renewal twice (a replayed
    listener call, a worker that skipped the claim) is an IntegrityError, not a second invoice."""
    (sub_id,) = await seed(db, 1)
    await billing_run(db, FrozenClock(RUN_AT), CONFIG)
    renewed = {
        "period_start": PERIOD_START.isoformat(),
        "period_end": PERIOD_END.isoformat(),
        "closed_period_start": CREATED_AT.isoformat(),
        "closed_period_end": PERIOD_START.isoformat(),
    }
    clock = FrozenClock(RUN_AT)
    with pytest.raises(IntegrityError, match="period_key"):
        async with db.unit_of_work() as session:
            services = billing_services(session, clock, CONFIG)
            sub = await services.subscriptions.get(sub_id)
            await services.billing.on_event(sub, "subscription.renewed", PERIOD_START, renewed)
    await assert_renewed_once(db, [sub_id])


async def test_a_stale_copy_renewed_without_the_claim_is_refused(db: Database) -> None:
    """Worker A read the due subscription before worker B renewed and committed it, and applies the
    step to its stale copy without claiming it: the lock rule refuses to write a subscription read
    without its lock (before the unique key would stop A's invoice), and A's whole transaction rolls
    back."""
    (sub_id,) = await seed(db, 1)
    clock = FrozenClock(RUN_AT)
    with pytest.raises(UnlockedSubscriptionWrite, match=sub_id):
        # read_only: on SQLite a writer's transaction takes the write lock when it begins, so worker B
        # could not commit inside it; a stale reader is what this test is about.
        async with db.unit_of_work(read_only=True) as stale_session:
            stale = billed_subscriptions(stale_session, clock, CONFIG)
            (copy,) = await stale.repo.due(RUN_AT, test_clock_id=None, limit=10)  # no claim
            assert copy.id == sub_id and copy.current_period_end == PERIOD_START

            assert (await billing_run(db, clock, CONFIG)).steps == 1  # worker B, committed

            await stale._run_due_steps(copy, RUN_AT)
    await assert_renewed_once(db, [sub_id])
    async with db.unit_of_work() as session:
        sub = await session.get(Subscription, sub_id)
        assert sub is not None and sub.version == 2  # created (1), renewed once (2)


# -- PostgreSQL only ------------------------------------------------------------------------------
@pytest.fixture
async def pg() -> AsyncIterator[str]:
    if not POSTGRES_URL:
        if IN_CI:
            pytest.fail(
                "TIERGATE_TEST_POSTGRES_URL is not set: the billing run must be tested on PostgreSQL in CI"
            )
        pytest.skip("needs PostgreSQL (TIERGATE_TEST_POSTGRES_URL; always run in CI)")
    database = Database(POSTGRES_URL, pooled=False)
    await _prepare_postgres(database)
    await database.dispose()
    yield POSTGRES_URL


@pytest.mark.postgres
async def test_two_workers_at_once_share_the_work_and_bill_each_period_once(pg: str) -> None:
    db = Database(pg, pooled=False)
    one, two = Database(pg, pooled=False), Database(pg, pooled=False)
    try:
        subs = await clone(db, (await seed(db, 1))[0], 299)
        clock = FrozenClock(RUN_AT)
        results: tuple[RunResult, RunResult] = await asyncio.gather(
            billing_run(one, clock, CONFIG, batch_size=20), billing_run(two, clock, CONFIG, batch_size=20)
        )
        a, b = results
        assert a.subscriptions + b.subscriptions == 300
        assert a.steps + b.steps == 300
        assert a.subscriptions > 0 and b.subscriptions > 0, results  # SKIP LOCKED: both got batches
        await assert_renewed_once(db, subs)
        assert (await billing_run(one, clock, CONFIG)).steps == 0
    finally:
        for database in (db, one, two):
            await database.dispose()


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_worker_killed_mid_run_loses_only_its_batch_and_the_rerun_bills_the_rest(pg: str) -> None:
    db = Database(pg, pooled=False)
    try:
        total, batch = 2000, 25
        subs = await clone(db, (await seed(db, 1))[0], total - 1)
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.billing._billrun_worker",
            pg,
            RUN_AT.isoformat(),
            str(batch),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 120
            done = 0
            while done < total // 10:
                assert worker.returncode is None, await worker.communicate()
                assert time.monotonic() < deadline, f"only {done} renewals after 120 s"
                await asyncio.sleep(0.05)
                done = await count_renewals(db)
            worker.send_signal(signal.SIGKILL)
            assert await asyncio.wait_for(worker.wait(), timeout=30) == -signal.SIGKILL
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        killed_at = await count_renewals(db)
        assert 0 < killed_at < total, killed_at
        # Only whole batches committed: the one in flight rolled back, invoices, numbers and all.
        assert killed_at % batch == 0, killed_at
        assert await sequence_value(db, "invoice:TG:2026") == killed_at
        assert sorted(i.number or "" for i in await renewals(db)) == numbers(killed_at)

        rerun = await billing_run(db, FrozenClock(RUN_AT), CONFIG, batch_size=200)

        assert rerun.subscriptions == rerun.steps == total - killed_at
        await assert_renewed_once(db, subs)
    finally:
        await db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("test_clock_id", [None, "clock_1"])
async def test_the_claim_reads_the_due_index_in_order_without_sorting(
    pg: str, test_clock_id: str | None
) -> None:
    """Each batch must read its first rows off ix_subscriptions_due, not sort every due row: with 100k due
    that sort made the run quadratic (a batch's claim took 180 ms at the start instead of 3 ms). The plan
    is asked with sorting disabled, so it shows a Sort only when the index cannot give the order."""
    db = Database(pg, pooled=False)
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.startswith("SELECT subscriptions."):
            captured.append((statement, params))

    event.listen(db.engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with db.unit_of_work() as session:
            await SubscriptionRepository(session).due(
                datetime(2026, 6, 1, tzinfo=UTC), test_clock_id=test_clock_id, limit=200, claim=True
            )
            ((statement, params),) = captured
            raw = (await (await session.connection()).get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("SET LOCAL enable_sort = off")
            plan = "\n".join(r[0] for r in await raw.fetch(f"EXPLAIN {statement}", *params))
    finally:
        await db.dispose()
    assert "ix_subscriptions_due" in plan and "Sort" not in plan, plan
