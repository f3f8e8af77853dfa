"""The billing run: renew every due subscription and invoice it, in batches, one transaction each.

Idempotent and concurrency-safe by construction, not by care:
- each batch claims its subscriptions with `FOR UPDATE SKIP LOCKED` (PostgreSQL), so two workers never
  hold the same subscription and never wait for each other;
- a renewal, its invoice and its outbox events commit together, and moving a subscription moves its
  `next_action_at` past now, so a committed subscription is no longer due;
- a crash rolls back the batch in flight; the rerun finds those subscriptions still due;
- `invoices.period_key` is unique per subscription period: whatever else goes wrong, a period cannot be
  invoiced twice.
The same function runs from the in-process scheduler (embedded), `tiergate worker` (saq cron in
production) and `tiergate billing-run` (once, by hand).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.billing.wiring import BillingConfig, billed_subscriptions, billing_services
from gateway.db.session import Database
from gateway.kernel.clock import Clock


@dataclass(frozen=True, slots=True)
class RunResult:
    subscriptions: int  # subscriptions that had a step due
    steps: int  # steps applied (renewals, trial ends, scheduled changes, cancellations)
    batches: int
    seconds: float
    overdue: int = 0  # send_invoice invoices that became overdue (`invoice.overdue` raised)
    late_usage: int = 0  # invoices of late usage of ended subscriptions (`sweep_late_usage`)


async def billing_run(
    db: Database,
    clock: Clock,
    config: BillingConfig,
    *,
    batch_size: int = 200,
    at: datetime | None = None,
    max_batches: int | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    after_batch: Callable[[], Awaitable[object]] | None = None,
) -> RunResult:
    """Apply every wall-clock subscription step due by `at` (default: now). Test-clock subscriptions
    move only when their clock is advanced.

    `after_batch` runs after each batch has committed, outside any transaction: the composition root
    passes payments' collection there, so the invoices a batch finalised are charged before the next
    batch (billing cannot import payments; the hook is how it asks)."""
    started = time.perf_counter()
    at = at or clock.now()
    subscriptions = steps = batches = 0
    while max_batches is None or batches < max_batches:
        async with db.unit_of_work(actor="system:billing_run") as session:
            service = billed_subscriptions(session, clock, config)
            claimed, applied = await service.advance_batch(at, limit=batch_size)
        if not claimed:
            break
        subscriptions += claimed
        steps += applied
        batches += 1
        if on_batch is not None:  # progress: (subscriptions so far, steps so far)
            on_batch(subscriptions, steps)
        if after_batch is not None:
            await after_batch()
    overdue = await sweep_overdue(db, clock, config, at=at, batch_size=batch_size)
    late = await _late_usage_hourly(db, clock, config, at=at, batch_size=batch_size)
    return RunResult(subscriptions, steps, batches, time.perf_counter() - started, overdue, late)


# When this process last swept ended subscriptions for late usage (see `_late_usage_hourly`).
_LATE_USAGE_SWEPT: dict[int, datetime] = {}
LATE_USAGE_EVERY = timedelta(hours=1)


async def _late_usage_hourly(
    db: Database, clock: Clock, config: BillingConfig, *, at: datetime, batch_size: int
) -> int:
    """The late-usage sweep recomputes every ended subscription's metered periods in the adjustment
    window (meter queries): worth once an hour, not every minute. Per process and database; a second
    worker sweeping in the same hour finds nothing new (the sweep is idempotent)."""
    last = _LATE_USAGE_SWEPT.get(id(db))
    if last is not None and at - last < LATE_USAGE_EVERY:
        return 0
    _LATE_USAGE_SWEPT[id(db)] = at
    return await sweep_late_usage(db, clock, config, at=at, batch_size=batch_size)


async def sweep_late_usage(
    db: Database, clock: Clock, config: BillingConfig, *, at: datetime, batch_size: int = 200
) -> int:
    """Bill the late usage of wall-clock subscriptions that have ended (`SubscriptionBilling.
    bill_late_usage`): usage that grew on an invoice of its own, usage that shrank as a credit note.
    Test-clock subscriptions are swept when their clock is advanced."""
    made = 0
    after: str | None = ""
    while after is not None:  # a transaction per page of ended subscriptions
        async with db.unit_of_work(actor="system:billing_run") as session:
            invoiced, after = await billing_services(session, clock, config).billing.bill_late_usage(
                at, test_clock_id=None, after=after, limit=batch_size
            )
        made += invoiced
    return made


async def sweep_overdue(
    db: Database, clock: Clock, config: BillingConfig, *, at: datetime, batch_size: int = 200
) -> int:
    """Mark the wall-clock send_invoice invoices whose due date passed before `at` overdue, one
    transaction per batch (claimed with SKIP LOCKED: two runs share the work, each invoice once)."""
    marked = 0
    while True:
        async with db.unit_of_work(actor="system:billing_run") as session:
            swept = await billing_services(session, clock, config).invoices.mark_overdue(
                at, test_clock_id=None, limit=batch_size
            )
        if not swept:
            return marked
        marked += swept
