"""One window's full metrics report: what `GET /v1/metrics` answers and what the admin dashboard shows
for each of its months. Both call this one function, so the page's numbers are the API's by construction
(and a test compares them)."""

from __future__ import annotations

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

# The parts of a window's report read live, never kept in a month roll-up ("as known now").
LIVE_PARTS = ("payments", "dunning")


def mrr_side(report: dict[str, Any]) -> dict[str, Any]:
    """A window's report without its live parts: what a month roll-up keeps."""
    return {key: value for key, value in report.items() if key not in LIVE_PARTS}


async def window_report(
    session: AsyncSession,
    scope: Scope,
    start: datetime,
    end: datetime,
    view: MovementView = MovementView.NET,
    *,
    ends: tuple[Snapshot, Snapshot] | None = None,
    trials: tuple[int, int] | None = None,
    kept: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """MRR, movements, churn, retention, ARPA, LTV, trials, payments and dunning for `[start, end)`.
    `ends`: the snapshots just before `start` and `end` when the caller has them already (the
    dashboard's one pass over the history, gateway/metrics/history.py); net movements only. `trials`:
    (converted, ended) when counted already. `kept`: the MRR side (`mrr_side`) of a closed month kept by
    gateway/metrics/rollups.py. A segment narrows every part, payments and dunning by their
    invoices (`service.invoice_filter`)."""
    service = MetricsService(session)
    if kept is not None:
        result = dict(kept)
    elif ends is None:
        result = await service.summary(scope, start, end, view)
    else:
        if view is not MovementView.NET:
            raise ValueError("snapshots give net movements only")
        opening, closing = ends
        moved = movements(opening.mrr, closing.mrr, opening.had_mrr)
        result = await service.summary_of(scope, start, end, view, opening.mrr, closing.mrr, moved, trials)
    result["payments"] = await PaymentMetrics(session).summary(scope, start, end)
    churned = int(result["movements"]["churn"]["amount"])
    result["dunning"] = await DunningMetrics(session).summary(scope, start, end, churned)
    return result


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
