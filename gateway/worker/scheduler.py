"""The in-process scheduler of embedded mode: periodically applies due subscription steps on the wall
clock. Production runs the same job function from `tiergate worker` (and saq, once billing lands)."""

from __future__ import annotations

import asyncio
import logging

from gateway.catalog import CatalogService
from gateway.catalog.repository import CatalogRepository
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.subscriptions import SubscriptionService
from gateway.subscriptions.repository import SubscriptionRepository

log = logging.getLogger("tiergate.scheduler")


async def advance_due_subscriptions(db: Database, clock: Clock) -> int:
    """One pass of the job: every wall-clock subscription step due now. Safe to run concurrently and
    twice: each subscription row is locked while it moves, and a moved row is no longer due."""
    async with db.unit_of_work() as session:
        subscriptions = SubscriptionService(
            SubscriptionRepository(session),
            CatalogService(CatalogRepository(session), clock),
            CustomerService(CustomerRepository(session), clock),
            clock,
        )
        return await subscriptions.advance_due(clock.now())


async def run_scheduler(db: Database, clock: Clock, interval_seconds: float) -> None:
    while True:
        try:
            steps = await advance_due_subscriptions(db, clock)
            if steps:
                log.info("applied %d due subscription steps", steps)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed pass must not stop the scheduler; the next pass retries
            log.exception("scheduler pass failed")
        await asyncio.sleep(interval_seconds)
