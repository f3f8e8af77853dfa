"""Month roll-ups: each closed month's MRR-side report, computed once and kept.

The admin dashboard shows up to 24 months. A month that has ended does not change unless a row it was
computed from does, so its report (what `MetricsService.summary_of` answers: MRR, movements, churn and
churn reasons, retention, ARPA, LTV, plan changes, trials) is kept in `metrics_month_rollups` with a
**fingerprint** of its inputs, and read back while the fingerprint still matches:

- the ledger: how many `mrr_changes` of the scope lie before the month's end, and the sum of their `seq`;
- trials: how many of the scope's trials ended before the month's end, and how many of those converted;
- cancellations: how many subscriptions were canceled before the month's end, and how many gave feedback.

Why a fingerprint and not invalidation by the writers: no writer has to know roll-ups exist, so none can
forget, and a change that commits late (a transaction that took its `seq` before a roll-up was computed
and committed after it: `seq` order is not commit order) still changes the count, so the month it lands
in, and every later one, is computed again. Reading all the fingerprints is three aggregate queries.

Not rolled up: the month in progress; payments and dunning, which report "as known now" (a retry after
the month still counts for the invoice first tried in it) and are read live; segments, which are any
combination of plan, interval, country and metadata, and take the ledger path every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import ensure_utc
from gateway.metrics.models import MetricsMonthRollup, MetricsSubscription, MrrChange
from gateway.metrics.service import Scope, Segment
from gateway.subscriptions.models import Subscription


def rolled_up(scope: Scope) -> bool:
    """Whether a scope's months are kept: the unsegmented ones (the dashboard as it opens)."""
    return scope.segment == Segment()


class MonthRollups:
    def __init__(self, session: AsyncSession, scope: Scope) -> None:
        self.session = session
        self.scope = scope
        self.clock_key = scope.test_clock_id or ""

    def _of_clock(self, column: Any) -> Any:
        return column.is_(None) if self.scope.test_clock_id is None else column == self.scope.test_clock_id

    async def fingerprints(self, ends: Sequence[datetime]) -> dict[datetime, str]:
        """Each month end's fingerprint: what the rows before it add up to, now."""
        if not ends:
            return {}

        def before(column: Any, end: datetime, value: Any = 1) -> Any:
            return func.coalesce(func.sum(case((column < end, value), else_=0)), 0)

        ledger = select(
            *[before(MrrChange.at, end) for end in ends],
            *[before(MrrChange.at, end, MrrChange.seq) for end in ends],
        ).where(MrrChange.currency == self.scope.currency, self._of_clock(MrrChange.test_clock_id))
        converted = case((MetricsSubscription.trial_converted.is_(True), 1), else_=0)
        trials = select(
            *[before(MetricsSubscription.trial_ended_at, end) for end in ends],
            *[before(MetricsSubscription.trial_ended_at, end, converted) for end in ends],
        ).where(
            MetricsSubscription.currency == self.scope.currency,
            self._of_clock(MetricsSubscription.test_clock_id),
            MetricsSubscription.trial_ended_at.is_not(None),
        )
        feedback = case((Subscription.cancellation_feedback.is_not(None), 1), else_=0)
        # The churn reasons look at every canceled subscription of a churned customer, whatever its
        # currency: counted over all of them (a needless recomputation at worst, never a stale month).
        cancellations = select(
            *[before(Subscription.ended_at, end) for end in ends],
            *[before(Subscription.ended_at, end, feedback) for end in ends],
        ).where(Subscription.status == "canceled", Subscription.ended_at.is_not(None))
        n = len(ends)
        parts = [(await self.session.execute(query)).one() for query in (ledger, trials, cancellations)]
        return {
            end: "|".join(f"{int(row[i])}:{int(row[n + i])}" for row in parts) for i, end in enumerate(ends)
        }

    async def kept(
        self, months: Sequence[tuple[datetime, datetime]]
    ) -> tuple[dict[datetime, Any], dict[datetime, str]]:
        """The closed months' kept reports that are still right (by month start), and every month's
        fingerprint now (to keep the ones computed again)."""
        prints = await self.fingerprints([end for _, end in months])
        by_start = {start: prints[end] for start, end in months}
        if not months:
            return {}, by_start
        rows = (
            await self.session.scalars(
                select(MetricsMonthRollup).where(
                    MetricsMonthRollup.currency == self.scope.currency,
                    MetricsMonthRollup.clock_key == self.clock_key,
                    MetricsMonthRollup.subtract_discounts == self.scope.subtract_discounts,
                    MetricsMonthRollup.month_start.in_(list(by_start)),
                )
            )
        ).all()
        fresh = {}
        for row in rows:
            start = ensure_utc(row.month_start)
            if by_start.get(start) == row.fingerprint:
                fresh[start] = row.report
        return fresh, by_start

    async def keep(self, start: datetime, fingerprint: str, report: dict[str, Any], now: datetime) -> None:
        """Store a month's report (replacing a stale one), computed at the scope's `now`. The fingerprint
        must have been read before the rows the report was computed from: a change committed in between
        then makes the kept month look stale (computed again), never look right while it is not."""
        key = (
            MetricsMonthRollup.currency == self.scope.currency,
            MetricsMonthRollup.clock_key == self.clock_key,
            MetricsMonthRollup.subtract_discounts == self.scope.subtract_discounts,
            MetricsMonthRollup.month_start == start,
        )
        try:
            async with self.session.begin_nested():
                await self.session.execute(delete(MetricsMonthRollup).where(*key))
                self.session.add(
                    MetricsMonthRollup(
                        currency=self.scope.currency,
                        clock_key=self.clock_key,
                        subtract_discounts=self.scope.subtract_discounts,
                        month_start=start,
                        fingerprint=fingerprint,
                        report=report,
                        computed_at=now,
                    )
                )
        except IntegrityError:
            pass  # another request kept the same month at the same moment: its row is as good
