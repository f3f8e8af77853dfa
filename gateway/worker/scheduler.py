"""`tiergate worker`: the registry's jobs (gateway/worker/jobs.py) without serving HTTP.

With `redis_url`: a saq Worker on the `tiergate` queue (every job as a saq cron job; run as many workers
as you like, each scheduled run happens once). Without: the same functions in process (`InProcessJobs`).
Set `relay_enabled = false` and `scheduler_enabled = false` on the `serve` replicas where a worker runs.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import Clock, SystemClock
from gateway.payments.lookup import billing_config as payments_billing_config
from gateway.payments.runtime import PaymentsRuntime, run_reconciler
from gateway.payments.service import PaymentSettings
from gateway.provisioning.hooks import discover_hooks
from gateway.provisioning.jobs import Wiring
from gateway.security.secretbox import box_for
from gateway.worker.jobs import InProcessJobs, job_context, saq_queue, saq_worker

log = logging.getLogger("tiergate.scheduler")


def payments_runtime(db: Database, clock: Clock, settings: Settings) -> PaymentsRuntime:
    """Reconciliation of payments left processing/unknown runs beside the registry's jobs."""
    return PaymentsRuntime(
        db,
        clock,
        box_for(settings),
        payments_billing_config(settings),
        PaymentSettings.from_settings(settings),
    )


def worker_wiring(settings: Settings, clock: SystemClock) -> Wiring:
    """The relay's wiring for a process that serves no HTTP: sessions live in Redis when configured."""
    sessions = None
    if settings.redis_url:
        from gateway.db.redis import redis_client
        from gateway.identity.sessions import RedisSessionStore

        client = redis_client(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, retries=1)
        sessions = RedisSessionStore(client, clock)
    return Wiring.from_settings(settings, hooks=discover_hooks(clock, sessions=sessions))


async def run_worker(settings: Settings) -> None:
    db = Database(settings.database_url)
    clock = SystemClock()
    ctx = job_context(db, clock, settings, worker_wiring(settings, clock))
    # Payments left processing or unknown (a crash between the provider's answer and the commit, a
    # timeout) are asked about again with the same idempotency key.
    reconciler = asyncio.create_task(
        run_reconciler(payments_runtime(db, clock, settings), settings.payment_reconcile_interval_seconds)
    )
    try:
        if settings.redis_url:
            queue = saq_queue(settings.redis_url, settings.redis_timeout_seconds)
            log.info("worker: saq on queue %r (every job of the registry as a cron job)", queue.name)
            await saq_worker(queue, ctx).start()
        else:
            log.info("worker: no redis_url, running the jobs in process")
            await InProcessJobs(ctx).run()
    finally:
        reconciler.cancel()
        await db.dispose()
