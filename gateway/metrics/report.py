"""One window's full metrics report: what `GET /v1/metrics` answers and what the admin dashboard shows
for each of its months. Both call this one function, so the page's numbers are the API's by construction
(and a test compares them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogService
from gateway.catalog.repository import CatalogRepository
from gateway.kernel.clock import Clock
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.money import normalize_currency
from gateway.kernel.periods import Interval
from gateway.metrics.domain import MovementView, movements
from gateway.metrics.dunning import DunningMetrics
from gateway.metrics.history import Snapshot
from gateway.metrics.payments import PaymentMetrics
from gateway.metrics.service import MetricsService, Scope, Segment
from gateway.subscriptions.clocks import TestClockNotFound
from gateway.subscriptions.repository import SubscriptionRepository


async def mrr_report(
    session: AsyncSession,
    scope: Scope,
    start: datetime,
    end: datetime,
    view: MovementView = MovementView.NET,
    *,
    ends: tuple[Snapshot, Snapshot] | None = None,
    trials: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A window's report but its live parts: MRR, movements, churn, retention, ARPA, LTV, plan changes,
    trials (what a month roll-up keeps, gateway/metrics/rollups.py). `ends`: the snapshots just before
    `start` and `end` when the caller has them already (the dashboard's one pass over the history,
    gateway/metrics/history.py); net movements only. `trials`: (converted, ended) when counted already."""
    service = MetricsService(session)
    if ends is None:
        return await service.summary(scope, start, end, view)
    if view is not MovementView.NET:
        raise ValueError("snapshots give net movements only")
    opening, closing = ends
    moved = movements(opening.mrr, closing.mrr, opening.had_mrr)
    return await service.summary_of(scope, start, end, view, opening.mrr, closing.mrr, moved, trials)


async def live_parts(
    session: AsyncSession, scope: Scope, windows: Sequence[tuple[datetime, datetime]], churned: Sequence[int]
) -> list[dict[str, Any]]:
    """Each window's `payments` and `dunning`, read for all the windows at once (in time order, not
    overlapping). Live: they report "as known now" (a retry after a window still counts for the invoice
    first tried in it), so they are never kept. `churned`: each window's churn movement. A segment
    narrows both by their invoices (`service.invoice_filter`)."""
    payments = await PaymentMetrics(session).summaries(scope, windows)
    dunning = await DunningMetrics(session).summaries(scope, windows, churned)
    return [{"payments": p, "dunning": d} for p, d in zip(payments, dunning, strict=True)]


def churn_of(report: dict[str, Any]) -> int:
    return int(report["movements"]["churn"]["amount"])


async def window_report(
    session: AsyncSession,
    scope: Scope,
    start: datetime,
    end: datetime,
    view: MovementView = MovementView.NET,
) -> dict[str, Any]:
    """`GET /v1/metrics`'s whole answer for `[start, end)`: `mrr_report` and the live parts."""
    result = await mrr_report(session, scope, start, end, view)
    [live] = await live_parts(session, scope, [(start, end)], [churn_of(result)])
    return {**result, **live}


@dataclass(frozen=True, slots=True)
class SegmentQuery:
    """A segment as a request names it (plan id or key, interval, country, `key:value` metadata)."""

    plan: str | None = None
    interval: str | None = None
    country: str | None = None
    metadata: tuple[str, ...] = ()


async def resolve_segment(session: AsyncSession, clock: Clock, query: SegmentQuery) -> Segment:
    """The segment a request names, checked: an unknown plan, interval or country, or metadata not
    written `key:value`, is a 422 on that field."""
    plan = None
    if query.plan:
        try:
            plan = (await CatalogService(CatalogRepository(session), clock).get_plan(query.plan)).id
        except NotFound:
            raise ValidationFailed(f"no plan {query.plan!r}", field="plan") from None
    if query.interval and query.interval not in {i.value for i in Interval}:
        raise ValidationFailed(f"interval is one of {', '.join(i.value for i in Interval)}", field="interval")
    country = (query.country or "").upper() or None
    if country is not None and (len(country) != 2 or not country.isalpha()):
        raise ValidationFailed("country is a two-letter ISO 3166-1 code", field="country")
    pairs = []
    for item in query.metadata:
        if not item.strip():
            continue  # an empty form field
        key, sep, value = item.partition(":")
        if not sep or not key.strip():
            raise ValidationFailed("metadata is written key:value", field="metadata")
        pairs.append((key.strip(), value.strip()))
    return Segment(plan, query.interval or None, country, tuple(sorted(pairs)))


async def scope_and_now(
    session: AsyncSession,
    clock: Clock,
    state: State,
    currency: str,
    test_clock: str | None,
    segment: SegmentQuery | None = None,
) -> tuple[Scope, datetime]:
    """The metrics scope of a request (currency, test clock, the discounts setting, the segment) and its
    "now": the test clock's frozen time when one is named, since its customers live at that time."""
    try:
        code = normalize_currency(currency)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="currency") from exc
    chosen = await resolve_segment(session, clock, segment) if segment is not None else Segment()
    now = clock.now()
    if test_clock is not None:
        row = await SubscriptionRepository(session).get_clock(test_clock)
        if row is None:
            raise TestClockNotFound(f"no test clock {test_clock!r}")
        now = row.frozen_time
    return Scope(code, test_clock, state.settings.metrics_mrr_subtract_discounts, chosen), now
