"""Prometheus metrics: what each process exports, and how /metrics renders them.

Two kinds of value:
- *events*, counted where they happen: request latency (the ASGI middleware in `requests.py`), job runs
  and their duration, billing-run progress. These are prometheus-client Counters and Histograms.
- *state*, read when it is asked for (`refresh`): the decision index's version and staleness, decisions
  by reason and quota-store errors (the engine keeps plain counters on the hot path: a dict increment,
  not a metric lock), the breaker, the outbox horizons, relay lag and webhook deliveries by status (from
  the database, at most every `DB_REFRESH_SECONDS`), the job queue's depth.

Several worker processes (`tiergate serve --workers N`): each process has its own memory, and a scrape
reaches one of them. With `PROMETHEUS_MULTIPROC_DIR` set (the CLI sets it for N > 1 before the workers
start), prometheus-client writes every value to a file per process and `render` adds them up: counters
and histograms are summed over workers, per-process state (index version, staleness, breaker) is kept per
`pid` (`liveall`), database-derived gauges take the most recent value. Each worker updates its own
index gauges after every catch-up (`engine.on_synced`), so a worker that was not the one scraped is no
older than its poll interval.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.db.stream import horizon_watches
from gateway.entitlements.breaker import CLOSED, HALF_OPEN, OPEN
from gateway.entitlements.engine import Engine
from gateway.notifications.models import WebhookDelivery
from gateway.notifications.relay import OutboxConsumer

log = logging.getLogger("tiergate.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Database-derived gauges are read at most this often, however often Prometheus (or several) scrape.
DB_REFRESH_SECONDS = 5.0

# Check-path latencies are sub-millisecond; billing and admin calls reach seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUEST_SECONDS = Histogram(
    "tiergate_http_request_duration_seconds",
    "HTTP request latency by route template (the route's path with {placeholders}), method and status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
DECISIONS = Counter(
    "tiergate_decisions_total",
    "Answers of the decision engine by reason: kind=policy (user, resource, action) or feature (quotas).",
    ["kind", "reason"],
)
QUOTA_ERRORS = Counter(
    "tiergate_quota_backend_errors_total",
    "Checks that found the quota store (Redis) unavailable: timeouts, refused connections, open breaker.",
)
INDEX_VERSION = Gauge(
    "tiergate_index_version", "Outbox position the decision index reflects.", multiprocess_mode="liveall"
)
INDEX_STALENESS = Gauge(
    "tiergate_index_staleness_seconds",
    "Seconds since the decision index last caught up with the database.",
    multiprocess_mode="liveall",
)
INDEX_STALE = Gauge(
    "tiergate_index_stale",
    "1 when the index is past entitlements_max_staleness_seconds (checks fail closed).",
    multiprocess_mode="liveall",
)
BREAKER = Gauge(
    "tiergate_quota_breaker_state",
    "The quota store's circuit breaker: 1 for the state it is in (closed, open, half_open).",
    ["state"],
    multiprocess_mode="liveall",
)
HORIZON_HELD = Gauge(
    "tiergate_outbox_horizon_held_seconds",
    "How long each change-stream reader's safe horizon has stood still (an open transaction holds it).",
    ["reader"],
    multiprocess_mode="liveall",
)
RELAY_LAG = Gauge(
    "tiergate_relay_lag_events",
    "Outbox events committed past each relay consumer's watermark (highest seq minus last handled).",
    ["consumer"],
    multiprocess_mode="mostrecent",
)
RELAY_PASS_AGE = Gauge(
    "tiergate_relay_last_pass_age_seconds",
    "Seconds since this process's outbox relay last passed successfully (where it runs the relay).",
    multiprocess_mode="liveall",
)
WEBHOOK_DELIVERIES = Gauge(
    "tiergate_webhook_deliveries",
    "Outgoing webhook deliveries by status (pending, delivered, failed).",
    ["status"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_DUE = Gauge(
    "tiergate_webhook_deliveries_due",
    "Pending webhook deliveries whose next attempt is due now (the delivery job's backlog).",
    multiprocess_mode="mostrecent",
)
JOB_QUEUE_DEPTH = Gauge(
    "tiergate_job_queue_depth",
    "Jobs waiting in the saq queue (production; absent in the embedded default).",
    ["queue"],
    multiprocess_mode="mostrecent",
)
JOB_RUNS = Counter("tiergate_job_runs_total", "Background job runs by job and outcome.", ["job", "outcome"])
JOB_SECONDS = Histogram(
    "tiergate_job_duration_seconds",
    "Background job run time.",
    ["job"],
    buckets=(0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0),
)
BILLING_SUBSCRIPTIONS = Counter(
    "tiergate_billing_run_subscriptions_total", "Subscriptions the billing run has moved (counted per batch)."
)
BILLING_STEPS = Counter("tiergate_billing_run_steps_total", "Steps the billing run has applied.")
BILLING_BATCHES = Counter("tiergate_billing_run_batches_total", "Batches the billing run has committed.")
BILLING_ACTIVE = Gauge(
    "tiergate_billing_run_in_progress", "Billing runs in progress.", multiprocess_mode="livesum"
)
BILLING_LAST_DONE = Gauge(
    "tiergate_billing_run_last_completed_timestamp_seconds",
    "Unix time the last billing run completed.",
    multiprocess_mode="max",
)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def render() -> bytes:
    """The exposition text: this process's registry, or every worker's files in multiprocess mode."""
    if multiprocess():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class BillingProgress:
    """`billing_run(on_batch=...)` reports cumulative totals; the counters take the differences."""

    def __init__(self) -> None:
        self._subscriptions = 0
        self._steps = 0

    def __call__(self, subscriptions: int, steps: int) -> None:
        BILLING_SUBSCRIPTIONS.inc(subscriptions - self._subscriptions)
        BILLING_STEPS.inc(steps - self._steps)
        BILLING_BATCHES.inc()
        self._subscriptions, self._steps = subscriptions, steps


class EngineExporter:
    """Moves one engine's plain counters into the Prometheus counters (by difference, so several
    engines in one process, as in tests, add up) and sets its state gauges."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._decisions: dict[tuple[str, str], int] = {}
        self._quota_errors = 0

    def __call__(self, *_: object) -> None:
        engine = self.engine
        for kind, counts in (("policy", engine.decisions), ("feature", engine.feature_verdicts)):
            for reason, total in list(counts.items()):
                key = (kind, reason)
                delta = total - self._decisions.get(key, 0)
                if delta:
                    DECISIONS.labels(kind, reason).inc(delta)
                    self._decisions[key] = total
        if engine.quota_errors > self._quota_errors:
            QUOTA_ERRORS.inc(engine.quota_errors - self._quota_errors)
            self._quota_errors = engine.quota_errors
        if engine.ready:
            INDEX_VERSION.set(engine.version)
            INDEX_STALENESS.set(round(engine.staleness_seconds, 3))
            INDEX_STALE.set(1 if engine.stale else 0)
        breaker = getattr(engine.quotas, "breaker", None)
        if breaker is not None:
            state = breaker.state
            for name in (CLOSED, OPEN, HALF_OPEN):
                BREAKER.labels(name).set(1 if name == state else 0)


class DatabaseGauges:
    """Relay lag and webhook deliveries, read from the database at most every `DB_REFRESH_SECONDS`."""

    def __init__(self, db: Database, clock: Any, timeout_seconds: float = 2.0) -> None:
        self.db = db
        self.clock = clock
        self.timeout_seconds = timeout_seconds
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(self) -> None:
        async with self._lock:
            if self._read_at is not None and time.monotonic() - self._read_at < DB_REFRESH_SECONDS:
                return
            self._read_at = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    await self._read()
            except Exception:  # a scrape must answer with what it has; the log says why a gauge is old
                log.warning("metrics: database gauges not refreshed", exc_info=True)

    async def _read(self) -> None:
        async with self.db.unit_of_work() as session:
            top = int(await session.scalar(select(func.coalesce(func.max(OutboxEvent.seq), 0))) or 0)
            for name, last in (
                await session.execute(select(OutboxConsumer.name, OutboxConsumer.last_seq))
            ).all():
                RELAY_LAG.labels(name).set(max(0, top - int(last or 0)))
            by_status: Mapping[str, int] = dict(
                (
                    await session.execute(
                        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
                    )
                )
                .tuples()
                .all()
            )
            for status in ("pending", "delivered", "failed", *by_status):
                WEBHOOK_DELIVERIES.labels(status).set(by_status.get(status, 0))
            due = await session.scalar(
                select(func.count()).where(
                    WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= self.clock.now()
                )
            )
            WEBHOOK_DUE.set(int(due or 0))


def export_process_state(relay: Any | None) -> None:
    """Per-process state read at scrape time: the change-stream readers' horizons, the relay's age."""
    for name, watch in horizon_watches().items():
        HORIZON_HELD.labels(name).set(round(watch.held_for(), 3))
    if relay is not None:
        since = relay.last_ok_at if relay.last_ok_at is not None else relay.started_at
        if since is not None:
            RELAY_PASS_AGE.set(round(time.monotonic() - since, 3))
