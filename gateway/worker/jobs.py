"""The job registry: every background job of Tiergate, once, and the two ways it runs.

job              what                                          saq (production)  in process (embedded)
relay            outbox -> provisioning, metrics, audit, hooks  every second      every relay pass
webhooks         one attempt at each due webhook delivery       every 5 seconds   relay pass, if due*
collection       first payment attempts of finalised invoices   every 2 seconds   relay pass, if due*
dunning          payment retries and reminders that are due     every 10 seconds  relay pass, if due*
mail             one attempt at each due customer e-mail        every 5 seconds   relay pass, if due*
past_due_sweep   revoke access past `past_due_grace_days`       every minute      relay pass, if due*
retention_purge  erase deprovisioned tenants past retention     hourly (:07)      relay pass, if due*
billing_run      renewals, trial ends, changes, their invoices  every minute      scheduler_interval

* after a relay pass that handled events (what they act on arrives as events: an invoice finalised, a
  mail queued), and otherwise every `relay_due_work_seconds` (what only the clock makes due: a retry, a
  grace period's end).

- **Production** (`tiergate worker` with `redis_url`): one saq Worker on the `tiergate` queue with every job
  as a function and a cron job. saq enqueues a cron job under a unique key per scheduled time, so N
  workers run each tick once; each job is also safe to run twice at once (relay: row locks per consumer;
  billing run: `SKIP LOCKED` batches and one invoice per period; webhooks: a delivery row is claimed).
  Operators see the queue in saq's dashboard at `/saq` (platform key, `operations:*` scopes).
- **Embedded** (no Redis; saq does not run without it): `InProcessJobs` inside `tiergate serve` or
  `tiergate worker` runs the same functions: the relay family in one pass (relay, sweep, purge, relay
  again for what they wrote, webhooks), nudged after every committed write and at least every
  `relay_interval_seconds`; the billing run on its own interval. `tick()` runs one whole pass (tests).
  An idle pass (no events, the due work done less than `relay_due_work_seconds` ago) is the relay's one
  read (0.7 ms against 5 ms for the whole pass on the benchmark's database): the loop also serves
  checks, and six due-list transactions a second showed in their p99.

Every run is counted (`tiergate_job_runs_total{job,outcome}`, `tiergate_job_duration_seconds`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.billing.run import billing_run
from gateway.billing.wiring import BillingConfig
from gateway.config import Settings
from gateway.db.session import Database
from gateway.dunning.service import run_due as run_due_dunning
from gateway.kernel.clock import Clock
from gateway.kernel.waiting import wait_for_nudge
from gateway.observability.metrics import (
    BILLING_ACTIVE,
    BILLING_LAST_DONE,
    JOB_RUNS,
    JOB_SECONDS,
    BillingProgress,
)
from gateway.payments.collection import Collector, billing_run_collection, collect_due
from gateway.payments.lookup import billing_config as payments_billing_config
from gateway.provisioning.jobs import Wiring, deliver_mail, deliver_webhooks, relay_once
from gateway.provisioning.service import purge_expired, sweep_past_due

log = logging.getLogger("tiergate.jobs")

QUEUE_NAME = "tiergate"


@dataclass
class JobContext:
    """What every job needs; built once per process (app lifespan or worker start)."""

    db: Database
    clock: Clock
    settings: Settings
    wiring: Wiring
    billing: BillingConfig


JobFunction = Callable[[JobContext], Awaitable[int]]


async def relay_job(ctx: JobContext) -> int:
    return await relay_once(ctx.db, ctx.clock, ctx.wiring)


async def webhooks_job(ctx: JobContext) -> int:
    return await deliver_webhooks(ctx.db, ctx.clock, ctx.wiring)


async def mail_job(ctx: JobContext) -> int:
    """One attempt at every due customer e-mail (claim, commit, send outside any transaction, record)."""
    return await deliver_mail(ctx.db, ctx.clock, ctx.wiring)


async def collection_job(ctx: JobContext) -> int:
    """First payment attempts of finalised invoices charged automatically, outside any transaction
    (gateway/payments/collection.py): a finalised invoice with a card on file is paid within moments."""
    w = ctx.wiring
    registry = w.payments.registry(w.secrets)
    return await collect_due(
        Collector(ctx.db, ctx.clock, registry, w.billing, w.payments, actor="system:collection")
    )


async def dunning_job(ctx: JobContext) -> int:
    """Dunning's retries that are due (gateway/dunning): each claimed under its run's lock, charged outside
    any transaction; the answers reach the `dunning` consumer through the outbox."""
    w = ctx.wiring
    registry = w.payments.registry(w.secrets)
    return await run_due_dunning(
        Collector(ctx.db, ctx.clock, registry, w.billing, w.payments, actor="system:dunning")
    )


async def past_due_sweep_job(ctx: JobContext) -> int:
    w = ctx.wiring
    return await sweep_past_due(ctx.db, ctx.clock, w.provisioning, w.hooks, w.on_keys_disabled)


async def retention_purge_job(ctx: JobContext) -> int:
    return await purge_expired(ctx.db, ctx.clock, ctx.wiring.provisioning, ctx.wiring.hooks)


async def billing_run_job(ctx: JobContext, on_batch: Callable[[int, int], None] | None = None) -> int:
    progress = BillingProgress()

    def report(subscriptions: int, steps: int) -> None:
        progress(subscriptions, steps)
        if on_batch is not None:
            on_batch(subscriptions, steps)

    BILLING_ACTIVE.inc()
    try:
        w = ctx.wiring
        collect = None
        if ctx.settings.billing_run_collect_concurrency > 0:  # each batch's invoices charged before the next
            collector = Collector(
                ctx.db,
                ctx.clock,
                w.payments.registry(w.secrets),
                w.billing,
                w.payments,
                actor="system:collection",
            )
            collect = billing_run_collection(
                collector,
                concurrency=ctx.settings.billing_run_collect_concurrency,
                limit=2 * ctx.settings.billing_run_batch_size,
            )
        result = await billing_run(
            ctx.db,
            ctx.clock,
            ctx.billing,
            batch_size=ctx.settings.billing_run_batch_size,
            on_batch=report,
            after_batch=collect,
        )
    finally:
        BILLING_ACTIVE.dec()
    BILLING_LAST_DONE.set(time.time())
    if result.steps:
        log.info(
            "billing run: %d steps on %d subscriptions in %.2fs",
            result.steps,
            result.subscriptions,
            result.seconds,
        )
    return result.steps


@dataclass(frozen=True)
class JobSpec:
    name: str
    run: JobFunction
    cron: str  # saq's schedule (croniter; a sixth field is seconds)
    family: str  # "relay" (runs where relay_enabled) or "billing" (where scheduler_enabled)
    timeout_seconds: int = 300


JOBS: tuple[JobSpec, ...] = (
    JobSpec("relay", relay_job, "* * * * * *", "relay"),
    JobSpec("past_due_sweep", past_due_sweep_job, "* * * * *", "relay"),
    JobSpec("retention_purge", retention_purge_job, "7 * * * *", "relay"),
    JobSpec("webhooks", webhooks_job, "* * * * * */5", "relay"),
    JobSpec("collection", collection_job, "* * * * * */2", "relay"),
    JobSpec("dunning", dunning_job, "* * * * * */10", "relay"),
    JobSpec("mail", mail_job, "* * * * * */5", "relay"),
    JobSpec("billing_run", billing_run_job, "* * * * *", "billing", timeout_seconds=3600),
)
BY_NAME = {spec.name: spec for spec in JOBS}


async def run_job(spec: JobSpec, ctx: JobContext) -> int:
    """One run of a job, counted and timed (both runners call this)."""
    started = time.perf_counter()
    try:
        done = await spec.run(ctx)
    except asyncio.CancelledError:
        JOB_RUNS.labels(spec.name, "cancelled").inc()
        raise
    except Exception:
        JOB_RUNS.labels(spec.name, "failed").inc()
        raise
    finally:
        JOB_SECONDS.labels(spec.name).observe(time.perf_counter() - started)
    JOB_RUNS.labels(spec.name, "ok").inc()
    return done


def job_context(db: Database, clock: Clock, settings: Settings, wiring: Wiring) -> JobContext:
    # Billing asks payments whether a customer has a usable method (trial end without one, rule 17).
    return JobContext(db, clock, settings, wiring, payments_billing_config(settings))


# -- embedded: in-process ------------------------------------------------------------------------------
@dataclass
class InProcessJobs:
    """The registry's jobs inside this process (no Redis). Also what health and tests read as the relay:
    `tick()`, `nudge()`, `started_at`, `last_ok_at` (time.monotonic() of the last good relay pass)."""

    ctx: JobContext
    relay: bool = True
    billing: bool = True
    started_at: float | None = None
    last_ok_at: float | None = None
    _nudged: asyncio.Event = field(default_factory=asyncio.Event)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _due_work_at: float | None = None  # time.monotonic() of the last pass that ran the due work

    def nudge(self, *_: object) -> None:
        self._nudged.set()

    async def tick(self, *, idle_allowed: bool = False) -> int:
        """One relay pass: relay, sweep, purge, relay again (their events), first payment attempts (and
        the relay for theirs), webhook attempts. With `idle_allowed` (the loop's passes) the rest is left
        out when the relay handled nothing and the due work ran less than `relay_due_work_seconds` ago."""
        async with self._lock:
            done = await run_job(BY_NAME["relay"], self.ctx)
            now = time.monotonic()
            recent = (
                self._due_work_at is not None
                and now - self._due_work_at < self.ctx.settings.relay_due_work_seconds
            )
            if idle_allowed and not done and recent:
                self.last_ok_at = now
                return 0
            self._due_work_at = now
            revoked = await run_job(BY_NAME["past_due_sweep"], self.ctx)
            revoked += await run_job(BY_NAME["retention_purge"], self.ctx)
            if revoked:
                done += await run_job(BY_NAME["relay"], self.ctx)
            collected = await run_job(BY_NAME["collection"], self.ctx)
            collected += await run_job(BY_NAME["dunning"], self.ctx)
            if collected:
                done += await run_job(BY_NAME["relay"], self.ctx)  # the payments' events
            done += revoked + collected + await run_job(BY_NAME["webhooks"], self.ctx)
            done += await run_job(BY_NAME["mail"], self.ctx)
        self.last_ok_at = time.monotonic()
        return done

    async def _relay_loop(self) -> None:
        interval = self.ctx.settings.relay_interval_seconds
        while True:
            await wait_for_nudge(self._nudged, interval)
            self._nudged.clear()
            try:
                await self.tick(idle_allowed=True)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass must not stop the relay; the next pass retries
                log.exception("relay pass failed")
                await asyncio.sleep(interval)

    async def _billing_loop(self) -> None:
        while True:
            try:
                await run_job(BY_NAME["billing_run"], self.ctx)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass must not stop the scheduler; the next pass retries
                log.exception("billing run failed")
            await asyncio.sleep(self.ctx.settings.scheduler_interval_seconds)

    async def run(self) -> None:
        self.started_at = time.monotonic()
        loops = []
        if self.relay:
            loops.append(self._relay_loop())
        if self.billing:
            loops.append(self._billing_loop())
        if loops:
            await asyncio.gather(*loops)

    async def queue_depths(self) -> dict[str, int]:
        return {}


# -- production: saq -----------------------------------------------------------------------------------
def saq_functions(ctx: JobContext, specs: tuple[JobSpec, ...] = JOBS) -> list[Any]:
    """The registry's jobs as saq functions (named after the job), closing over the context."""

    def as_saq(spec: JobSpec) -> Any:
        async def function(_: Any) -> int:
            return await run_job(spec, ctx)

        function.__name__ = function.__qualname__ = spec.name
        return function

    return [as_saq(spec) for spec in specs]


def saq_worker(
    queue: Any, ctx: JobContext, *, specs: tuple[JobSpec, ...] = JOBS, concurrency: int = 4
) -> Any:
    from saq import CronJob, Worker

    functions = saq_functions(ctx, specs)
    crons = [
        CronJob(function, cron=spec.cron, unique=True, timeout=spec.timeout_seconds)
        for spec, function in zip(specs, functions, strict=True)
    ]
    return Worker(queue, functions=functions, cron_jobs=crons, concurrency=concurrency, dequeue_timeout=1.0)


def saq_queue(redis_url: str, timeout_seconds: float) -> Any:
    from saq.queue.redis import RedisQueue

    from gateway.db.redis import redis_client

    # saq blocks on BLMOVE and pub/sub by design: a connect timeout and TCP keepalive, no read timeout;
    # its dequeue wakes every second, so a shutdown is never held by a blocked read.
    client = redis_client(redis_url, timeout_seconds=timeout_seconds, read_timeout=False)
    return RedisQueue(client, name=QUEUE_NAME)


@dataclass
class SaqJobs:
    """The serving app's view of the production queue: its depth for /metrics, the dashboard's queues."""

    queue: Any

    async def queue_depths(self) -> dict[str, int]:
        return {self.queue.name: int(await self.queue.count("queued"))}
