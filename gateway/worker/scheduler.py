"""Background jobs and how they are scheduled.

The job bodies are plain async functions over (db, clock, config): tests and `tiergate billing-run` call
them directly. Beside the billing run, `tiergate worker` runs the outbox relay (provisioning, audit,
outgoing webhooks, metrics, payments' provider webhooks, the past-due sweep, the retention purge) and the
payments reconciliation: run it in the worker and set
`relay_enabled = false` on the `serve` replicas. Two schedulers run the billing run:
- embedded (no Redis): `run_scheduler`, a loop inside `tiergate serve` or `tiergate worker`;
- production (Redis): saq, a cron job every minute in `tiergate worker`, any number of replicas. saq's
  cron jobs are unique per queue, and the billing run itself is safe to run twice at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from typing import Any

from gateway.billing.run import RunResult, billing_run
from gateway.billing.wiring import BillingConfig
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import Clock, SystemClock
from gateway.payments.lookup import billing_config as payments_billing_config
from gateway.payments.runtime import PaymentsRuntime, run_reconciler
from gateway.payments.service import PaymentSettings
from gateway.provisioning.hooks import discover_hooks
from gateway.provisioning.jobs import BackgroundRelay, Wiring
from gateway.security.secretbox import box_for

log = logging.getLogger("tiergate.scheduler")


async def advance_due_subscriptions(
    db: Database, clock: Clock, config: BillingConfig | None = None, *, batch_size: int = 200
) -> RunResult:
    """One pass of the billing run on the wall clock: renewals, trial ends, scheduled changes and their
    invoices."""
    return await billing_run(db, clock, config or BillingConfig(), batch_size=batch_size)


async def run_scheduler(
    db: Database, clock: Clock, interval_seconds: float, config: BillingConfig, *, batch_size: int = 200
) -> None:
    while True:
        try:
            result = await advance_due_subscriptions(db, clock, config, batch_size=batch_size)
            if result.steps:
                log.info(
                    "billing run: %d steps on %d subscriptions in %.2fs",
                    result.steps,
                    result.subscriptions,
                    result.seconds,
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed pass must not stop the scheduler; the next pass retries
            log.exception("scheduler pass failed")
        await asyncio.sleep(interval_seconds)


def payments_runtime(db: Database, clock: Clock, settings: Settings) -> PaymentsRuntime:
    """Reconciliation of payments left processing/unknown runs beside the billing run."""
    return PaymentsRuntime(
        db,
        clock,
        box_for(settings),
        payments_billing_config(settings),
        PaymentSettings.from_settings(settings),
    )


def relay_loop(db: Database, clock: Clock, settings: Settings) -> BackgroundRelay:
    """The outbox relay for a process that serves no HTTP: sessions live in Redis when configured."""
    sessions = None
    if settings.redis_url:
        from gateway.db.redis import redis_client
        from gateway.identity.sessions import RedisSessionStore

        client = redis_client(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, retries=1)
        sessions = RedisSessionStore(client, clock)
    wiring = Wiring.from_settings(settings, hooks=discover_hooks(clock, sessions=sessions))
    return BackgroundRelay(db, clock, wiring, settings.relay_interval_seconds)


async def run_worker(settings: Settings) -> None:
    """`tiergate worker`: the relay, plus the billing run (saq cron with Redis, a loop without)."""
    db = Database(settings.database_url)
    clock = SystemClock()
    relay = asyncio.create_task(relay_loop(db, clock, settings).run())
    reconciler = asyncio.create_task(
        run_reconciler(payments_runtime(db, clock, settings), settings.payment_reconcile_interval_seconds)
    )
    try:
        if settings.redis_url:
            await run_saq_worker(settings)
        else:
            await run_scheduler(
                db,
                clock,
                settings.scheduler_interval_seconds,
                payments_billing_config(settings),
                batch_size=settings.billing_run_batch_size,
            )
    finally:
        relay.cancel()
        reconciler.cancel()
        await db.dispose()


async def run_saq_worker(settings: Settings) -> None:
    """`tiergate worker` with Redis: saq runs the billing run every minute (cron jobs are unique per
    queue, so N workers do not start N runs; and two runs at once would still be safe)."""
    from saq import CronJob, Worker
    from saq.queue.redis import RedisQueue
    from saq.types import Context

    db = Database(settings.database_url)
    clock = SystemClock()
    config = payments_billing_config(settings)

    async def billing_run_job(ctx: Context) -> dict[str, Any]:
        result = await billing_run(db, clock, config, batch_size=settings.billing_run_batch_size)
        if result.steps:
            log.info("billing run: %d steps on %d subscriptions", result.steps, result.subscriptions)
        return asdict(result)

    async def shutdown(ctx: Context) -> None:
        await db.dispose()

    from gateway.db.redis import redis_client

    # saq blocks on BLMOVE and pub/sub by design: a connect timeout and TCP keepalive, no read timeout;
    # its dequeue wakes every second, so a shutdown is never held by a blocked read.
    client = redis_client(
        settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, read_timeout=False
    )
    queue = RedisQueue(client, name="tiergate")
    worker = Worker(
        queue,
        functions=[billing_run_job],
        cron_jobs=[CronJob(billing_run_job, cron="* * * * *", unique=True, timeout=3600)],
        shutdown=shutdown,
        concurrency=2,
        dequeue_timeout=1.0,
    )
    await worker.start()
