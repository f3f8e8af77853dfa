"""Billing run throughput on PostgreSQL: N active subscriptions due at once, renewed and invoiced, with 1
and with 2 worker processes, against a same-run floor.

    .venv/bin/python benchmarks/bench_billing_run.py [--subscriptions 100000] [--database-url URL]
        [--batch-size 200] [--workers 1,2]

Target (issue 4, "Benchmark"): all 100k in <= 60 s on 2 cores, exactly one invoice each.

Seeding goes around the API on purpose (it is not what is measured): one customer and subscription are
made through the billed subscription service, and their rows are copied N-1 times with fresh ids by
bulk INSERTs, so every row is shaped exactly as the service shapes it. All are on basic_monthly
(900 USD), created 2025-12-10 09:00 UTC, due 2026-01-10 09:00; the run is at 2026-01-20, so the
renewals are invoices TG-2026-000001 … N.

The floor: the same number of transactions of the same size, each one `UPDATE subscriptions` (period,
next_action_at, version) and `INSERT invoices` for its batch with SQLAlchemy Core executemany; that is
what the database alone charges to move and invoice N subscriptions, and "ratio vs floor" is what the
engine (ORM, pricing, lines, numbering, events) adds on top.

Each worker is its own process (spawn) with its own event loop, engine and connection. Before each
measured run the database is emptied and re-seeded. THE DATABASE GIVEN IS EMPTIED (every table
truncated): point it at a scratch database. Exits 1 when the target is missed or any subscription
is not invoiced exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from benchmarks._scratch_db import ensure_database
from gateway.all_models import Base
from gateway.billing.models import Invoice
from gateway.billing.run import billing_run
from gateway.billing.wiring import BillingConfig, billed_subscriptions
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.db.migrate import upgrade_head
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.kernel.clock import FrozenClock
from gateway.kernel.ids import new_id
from gateway.subscriptions.models import Subscription

TARGET_SECONDS = 60.0
TARGET_AT = 100_000
CATALOG_AT = datetime(2025, 12, 1, tzinfo=UTC)
CREATED_AT = datetime(2025, 12, 10, 9, 0, tzinfo=UTC)
RUN_AT = datetime(2026, 1, 20, tzinfo=UTC)
SEED_CHUNK = 5_000
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tiergate_bench_billing_run"


# -- seeding -------------------------------------------------------------------------------------
async def reset(db: Database) -> None:
    """A fresh schema at the migrations' head (as tests/conftest.py does: a regenerated migration with
    the same revision id would otherwise leave an old schema in place)."""
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade_head(db)


def _columns(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__mapper__.column_attrs}


async def seed(db: Database, n: int) -> float:
    """Empty the database, then the demo catalog and n active basic_monthly subscriptions, all due."""
    started = time.perf_counter()
    await reset(db)
    clock = FrozenClock(CATALOG_AT)
    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    clock.set(CREATED_AT)
    async with db.unit_of_work() as session:
        customer = await CustomerService(CustomerRepository(session), clock).create(
            name="Customer 0", currency="USD", country="US"
        )
        sub = await billed_subscriptions(session, clock, BillingConfig()).create(
            customer_id=customer.id, price="basic_monthly"
        )
        customer_row, sub_row = _columns(customer), _columns(sub)
    customer_table, sub_table = Base.metadata.tables["customers"], Base.metadata.tables["subscriptions"]
    # Column keys (metadata_) to column names (metadata) for Core.
    customer_names = {p.key: p.columns[0].key for p in Customer.__mapper__.column_attrs}
    sub_names = {p.key: p.columns[0].key for p in Subscription.__mapper__.column_attrs}
    for first in range(1, n, SEED_CHUNK):
        customers, subs = [], []
        for i in range(first, min(n, first + SEED_CHUNK)):
            tenant = new_id("cus")
            customers.append(
                {
                    customer_names[k]: v
                    for k, v in {**customer_row, "id": tenant, "name": f"Customer {i}"}.items()
                }
            )
            subs.append(
                {sub_names[k]: v for k, v in {**sub_row, "id": new_id("sub"), "tenant_id": tenant}.items()}
            )
        async with db.engine.begin() as conn:
            await conn.execute(pg_insert(customer_table), customers)
            await conn.execute(pg_insert(sub_table), subs)
    async with db.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))
        due = await conn.scalar(
            select(func.count()).select_from(sub_table).where(sub_table.c.next_action_at <= RUN_AT)
        )
    assert due == n, (due, n)
    return time.perf_counter() - started


# -- the floor -----------------------------------------------------------------------------------
async def floor(db: Database, batch_size: int) -> float:
    """Seconds for bare Core UPDATE + INSERT of every due subscription, in batches of batch_size."""
    subs = Base.metadata.tables["subscriptions"]
    async with db.engine.connect() as conn:
        rows = (await conn.execute(select(subs.c.id, subs.c.tenant_id).order_by(subs.c.id))).all()
    move = (
        update(subs)
        .where(subs.c.id == bindparam("sid"))
        .values(
            current_period_start=bindparam("start"),
            current_period_end=bindparam("end"),
            next_action_at=bindparam("end"),
            version=subs.c.version + 1,
            updated_at=bindparam("start"),
        )
    )
    start, end = datetime(2026, 1, 10, 9, tzinfo=UTC), datetime(2026, 2, 10, 9, tzinfo=UTC)
    started = time.perf_counter()
    for first in range(0, len(rows), batch_size):
        batch = rows[first : first + batch_size]
        async with db.engine.begin() as conn:
            await conn.execute(move, [{"sid": r.id, "start": start, "end": end} for r in batch])
            await conn.execute(
                pg_insert(Base.metadata.tables["invoices"]),
                [
                    {
                        "id": new_id("in"),
                        "tenant_id": r.tenant_id,
                        "subscription_id": r.id,
                        "status": "open",
                        "billing_reason": "subscription_cycle",
                        "currency": "USD",
                        "number": f"FLOOR-{first + k:07d}",
                        "period_start": start,
                        "period_end": end,
                        "subtotal": 900,
                        "total": 900,
                        "amount_due": 900,
                        "amount_remaining": 900,
                        "period_key": f"{r.id}:{start.isoformat()}",
                        "created_at": start,
                        "updated_at": start,
                    }
                    for k, r in enumerate(batch)
                ],
            )
    return time.perf_counter() - started


# -- the measured run ----------------------------------------------------------------------------
def _worker(url: str, batch_size: int, time_limit: float | None, ready: Any, go: Any, out: Any) -> None:
    async def run() -> tuple[int, int, int]:
        db = Database(url)
        clock, config = FrozenClock(RUN_AT), BillingConfig()
        try:
            async with db.engine.connect() as conn:  # open the pool's first connection before the start
                await conn.execute(text("SELECT 1"))
            ready.set()
            go.wait()
            if time_limit is None:
                result = await billing_run(db, clock, config, batch_size=batch_size)
                return result.subscriptions, result.steps, result.batches
            # Capped: the same loop as billing_run (one batch, one transaction), stopping at the limit.
            deadline = time.perf_counter() + time_limit
            subscriptions = steps = batches = 0
            while time.perf_counter() < deadline:
                one = await billing_run(db, clock, config, batch_size=batch_size, max_batches=1)
                if not one.subscriptions:
                    break
                subscriptions, steps, batches = (
                    subscriptions + one.subscriptions,
                    steps + one.steps,
                    batches + 1,
                )
            return subscriptions, steps, batches
        finally:
            await db.dispose()

    out.put(asyncio.run(run()))


@dataclass
class Measured:
    what: str
    n: int
    seconds: float
    per_worker: list[int]
    invoices: int
    exactly_once: bool


def measure(url: str, n: int, workers: int, batch_size: int, time_limit: float | None = None) -> Measured:
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    readies = [context.Event() for _ in range(workers)]
    processes = [
        context.Process(target=_worker, args=(url, batch_size, time_limit, readies[i], go, out))
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    for ready in readies:
        if not ready.wait(timeout=120):
            raise RuntimeError("a worker did not start")
    started = time.perf_counter()
    go.set()
    results = [out.get() for _ in processes]
    seconds = time.perf_counter() - started
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a worker exited with {process.exitcode}")
    renewed = sum(r[0] for r in results)
    invoices, once = asyncio.run(verify(url, n, renewed))
    return Measured(
        f"billing_run, {workers} worker{'s' if workers > 1 else ''}",
        renewed,
        seconds,
        [r[0] for r in results],
        invoices,
        once,
    )


async def verify(url: str, n: int, renewed: int) -> tuple[int, bool]:
    """(renewal invoices, whether each of the `renewed` subscriptions has exactly one, numbered 1..renewed
    without a gap, and the other n - renewed are still due)."""
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.count(func.distinct(Invoice.subscription_id)),
                        func.count(func.distinct(Invoice.number)),
                        func.min(Invoice.number),
                        func.max(Invoice.number),
                        func.sum(Invoice.total),
                    ).where(Invoice.billing_reason == "subscription_cycle")
                )
            ).one()
            due = await conn.scalar(
                select(func.count()).select_from(Subscription).where(Subscription.next_action_at <= RUN_AT)
            )
    finally:
        await db.dispose()
    count, subs, numbers, low, high, total = row
    once = (
        count == subs == numbers == renewed
        and due == n - renewed
        and low == "TG-2026-000001"
        and high == f"TG-2026-{renewed:06d}"
        and total == 900 * renewed
    )
    return int(count), once


async def seed_and_floor(url: str, n: int, batch_size: int, with_floor: bool) -> tuple[float, float | None]:
    db = Database(url)
    try:
        seeded = await seed(db, n)
        floor_seconds = None
        if with_floor:
            floor_seconds = await floor(db, batch_size)
            await seed(db, n)
        return seeded, floor_seconds
    finally:
        await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscriptions", type=int, default=TARGET_AT)
    parser.add_argument("--database-url", default=os.environ.get("TIERGATE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts to run")
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop each run after this many seconds (between batches) and project the total from its rate",
    )
    args = parser.parse_args()
    n, url = args.subscriptions, args.database_url
    if not url.startswith("postgresql"):
        parser.error("the billing run benchmark needs PostgreSQL")
    asyncio.run(ensure_database(url))

    rows: list[Measured] = []
    floor_seconds: float | None = None
    seed_seconds = 0.0
    for i, workers in enumerate(int(w) for w in args.workers.split(",")):
        seeded, measured_floor = asyncio.run(seed_and_floor(url, n, args.batch_size, with_floor=i == 0))
        seed_seconds = seed_seconds or seeded
        floor_seconds = measured_floor if measured_floor is not None else floor_seconds
        rows.append(measure(url, n, workers, args.batch_size, args.time_limit))

    assert floor_seconds is not None
    floor_rate = n / floor_seconds
    cap = f", runs capped at {args.time_limit:g} s" if args.time_limit else ""
    print(
        f"PostgreSQL {url.rsplit('@', 1)[-1]}, {n} due subscriptions (basic_monthly, 900 USD), "
        f"batch {args.batch_size}{cap}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
        f"seeded in {seed_seconds:.1f} s"
    )
    print()
    print(
        f"| {'what':<28} | {'renewed':>7} | {'seconds':>8} | {'subs/s':>8} | {'all N at this rate':>18} | "
        f"{'per worker':>11} | {'invoices':>8} | {'exactly once':>12} | {'ratio vs floor':>14} |"
    )
    widths = (8, 9, 9, 19, 12, 9, 13, 15)
    print(f"|{'-' * 30}|" + "".join(f"{'-' * w}:|" for w in widths))
    print(
        f"| {'floor: Core UPDATE + INSERT':<28} | {n:>7} | {floor_seconds:>8.2f} | {floor_rate:>8.0f} | "
        f"{floor_seconds:>16.1f} s | {'-':>11} | {n:>8} | {'-':>12} | {1.0:>14.2f} |"
    )
    projected: list[float] = []
    for row in rows:
        rate = row.n / row.seconds if row.seconds else 0.0
        whole = n / rate if rate else float("inf")
        projected.append(whole)
        per = "/".join(str(p) for p in row.per_worker)
        print(
            f"| {row.what:<28} | {row.n:>7} | {row.seconds:>8.2f} | {rate:>8.1f} | {whole:>16.1f} s | "
            f"{per:>11} | {row.invoices:>8} | {'yes' if row.exactly_once else 'NO':>12} | "
            f"{floor_rate / rate if rate else float('inf'):>14.1f} |"
        )

    best = min(projected)
    scaled = best * TARGET_AT / n
    all_once = all(row.exactly_once for row in rows)
    met = scaled <= TARGET_SECONDS and all_once
    print()
    notes = []
    if any(row.n < n for row in rows):
        notes.append(f"projected from the capped run's rate to all {n}")
    if n != TARGET_AT:
        notes.append(f"scaled from {n} to {TARGET_AT}")
    note = f" ({'; '.join(notes)})" if notes else ""
    print(
        f"target: {TARGET_AT} subscriptions in <= {TARGET_SECONDS:.0f} s, exactly one invoice each -> "
        f"{scaled:.1f} s{note}, exactly once: {'yes' if all_once else 'NO'}: {'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
