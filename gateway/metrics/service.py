"""Reading the metrics: MRR at an instant from the `mrr_changes` history, and a window's movements,
churn, retention, ARPA, LTV and trial conversion (domain.py has the definitions).

Customers on a test clock are their own world: a query looks either at the wall-clock customers (the
default) or at the customers of one test clock, at that clock's time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from gateway.kernel.clock import ensure_utc, format_timestamp
from gateway.kernel.periods import add_months
from gateway.metrics import domain
from gateway.metrics.models import MetricsSubscription, MrrChange


@dataclass(frozen=True, slots=True)
class Scope:
    currency: str
    test_clock_id: str | None = None  # None: the wall-clock customers
    subtract_discounts: bool = True


class MetricsService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _clock_filter(self, column: InstrumentedAttribute[str | None], scope: Scope) -> ColumnElement[bool]:
        return column.is_(None) if scope.test_clock_id is None else column == scope.test_clock_id

    def _value(self, gross: Any, discount: Any, scope: Scope) -> Any:
        return gross - discount if scope.subtract_discounts else gross

    async def mrr_by_customer(self, scope: Scope, at: datetime, *, before: bool = False) -> dict[str, int]:
        """Each customer's MRR at `at` (customers at 0 left out): per subscription, its last change at
        or before `at` (strictly before with `before`: what a window starting or ending at `at` sees,
        the windows being half-open), summed per customer."""
        totals: dict[str, int] = {}
        for tenant, _, value in await self._subscription_values(scope, at, before=before):
            totals[tenant] = totals.get(tenant, 0) + value
        return {tenant: total for tenant, total in totals.items() if total}

    async def _subscription_values(
        self, scope: Scope, at: datetime, *, before: bool
    ) -> list[tuple[str, str, int]]:
        """(customer, subscription, MRR) of every subscription by its last change at `at` (or before)."""
        later = aliased(MrrChange)

        def in_time(column: InstrumentedAttribute[datetime]) -> ColumnElement[bool]:
            return column < at if before else column <= at

        last = ~exists().where(
            later.subscription_id == MrrChange.subscription_id,
            in_time(later.at),
            or_(later.at > MrrChange.at, and_(later.at == MrrChange.at, later.seq > MrrChange.seq)),
        )
        value = self._value(MrrChange.gross, MrrChange.discount, scope)
        query = select(MrrChange.tenant_id, MrrChange.subscription_id, value).where(
            MrrChange.currency == scope.currency,
            in_time(MrrChange.at),
            self._clock_filter(MrrChange.test_clock_id, scope),
            last,
        )
        return [(tenant, sub, int(v)) for tenant, sub, v in (await self.session.execute(query)).all()]

    async def movement_steps(self, scope: Scope, start: datetime, end: datetime) -> list[tuple[str, int]]:
        """Every change of a customer's MRR in `[start, end)`, in time order: (customer, its MRR after
        the change). Changes of one customer at one instant (a cancel and a new subscription) are one."""
        opening = await self._subscription_values(scope, start, before=True)
        values = {sub: (tenant, v) for tenant, sub, v in opening}
        query = (
            select(
                MrrChange.at,
                MrrChange.tenant_id,
                MrrChange.subscription_id,
                self._value(MrrChange.gross, MrrChange.discount, scope),
            )
            .where(
                MrrChange.currency == scope.currency,
                MrrChange.at >= start,
                MrrChange.at < end,
                self._clock_filter(MrrChange.test_clock_id, scope),
            )
            .order_by(MrrChange.at, MrrChange.seq)
        )
        steps: list[tuple[str, int]] = []
        instant: datetime | None = None
        touched: list[str] = []

        def flush() -> None:
            for customer in touched:
                steps.append((customer, sum(v for t, v in values.values() if t == customer)))
            touched.clear()

        for at, tenant, sub, value in (await self.session.execute(query)).all():
            if at != instant:
                flush()
                instant = at
            values[sub] = (tenant, int(value))
            if tenant not in touched:
                touched.append(tenant)
        flush()
        return steps

    async def customers_with_mrr_before(self, scope: Scope, at: datetime) -> frozenset[str]:
        """Customers that had MRR at some moment before `at` (for reactivation)."""
        query = (
            select(MrrChange.tenant_id)
            .where(
                MrrChange.currency == scope.currency,
                MrrChange.at < at,
                self._clock_filter(MrrChange.test_clock_id, scope),
                self._value(MrrChange.gross, MrrChange.discount, scope) > 0,
            )
            .distinct()
        )
        return frozenset((await self.session.scalars(query)).all())

    async def first_paid(self, scope: Scope) -> dict[str, datetime]:
        """When each customer first had MRR: the cohort it belongs to."""
        query = (
            select(MrrChange.tenant_id, func.min(MrrChange.at))
            .where(
                MrrChange.currency == scope.currency,
                self._clock_filter(MrrChange.test_clock_id, scope),
                self._value(MrrChange.gross, MrrChange.discount, scope) > 0,
            )
            .group_by(MrrChange.tenant_id)
        )
        return {tenant: ensure_utc(at) for tenant, at in (await self.session.execute(query)).all()}

    async def cohorts(
        self, scope: Scope, start: datetime, months: int, now: datetime
    ) -> list[dict[str, Any]]:
        """Monthly cohorts from `start`: the customers whose first MRR fell in each month `[1st, next 1st)`,
        and at the end of that month and of each later one (up to `now`), how many of them still pay and
        their MRR. A month's end is its last instant: a change on the next 1st at 00:00 is not in it."""
        bounds = [add_months(start, i) for i in range(months + 1)]
        ends: list[datetime] = []  # each month's end; the month in progress is measured now
        for bound in bounds[1:]:
            ends.append(min(bound, now))
            if bound >= now:
                break
        at_end = [await self.mrr_by_customer(scope, end, before=True) for end in ends]
        first = await self.first_paid(scope)
        rows = []
        for i in range(months):
            members = {c for c, at in first.items() if bounds[i] <= at < bounds[i + 1]}
            periods = [
                {
                    "month": k,
                    "customers": sum(1 for c in members if snapshot.get(c, 0) > 0),
                    "mrr": sum(snapshot.get(c, 0) for c in members),
                }
                for k, snapshot in enumerate(at_end[i:])
            ]
            cohort = format_timestamp(bounds[i])
            rows.append({"cohort": cohort, "customers": len(members), "periods": periods})
        return rows

    async def trials(self, scope: Scope, start: datetime, end: datetime) -> tuple[int, int]:
        """(converted, ended) for trials that ended in [start, end)."""
        query = select(MetricsSubscription.trial_converted, func.count()).where(
            MetricsSubscription.currency == scope.currency,
            MetricsSubscription.trial_ended_at >= start,
            MetricsSubscription.trial_ended_at < end,
            self._clock_filter(MetricsSubscription.test_clock_id, scope),
        )
        rows = (await self.session.execute(query.group_by(MetricsSubscription.trial_converted))).all()
        converted = sum(n for flag, n in rows if flag)
        return converted, sum(n for _, n in rows)

    async def summary(
        self,
        scope: Scope,
        start: datetime,
        end: datetime,
        view: domain.MovementView = domain.MovementView.NET,
    ) -> dict[str, Any]:
        """Everything for the window `[start, end)`, in minor units of `scope.currency`: MRR at the
        start (just before it) and at the end (just before it), the movements in between (net per
        customer, or each change), and the revenue churn rates computed from those movements."""
        at_start = await self.mrr_by_customer(scope, start, before=True)
        at_end = await self.mrr_by_customer(scope, end, before=True)
        before = await self.customers_with_mrr_before(scope, start)
        if view is domain.MovementView.EACH:
            steps = await self.movement_steps(scope, start, end)
            moved = domain.movement_sequence(at_start, steps, before)
        else:
            moved = domain.movements(at_start, at_end, before)
        start_mrr, end_mrr = sum(at_start.values()), sum(at_end.values())
        lost = sum(1 for customer in at_start if at_end.get(customer, 0) == 0)
        churn = domain.churn(start_mrr, moved, len(at_start), lost)
        kept = domain.retention(at_start, at_end)
        arpa = domain.arpa(end_mrr, len(at_end))
        ltv = domain.ltv(arpa, churn.customer)
        converted, ended = await self.trials(scope, start, end)
        rate = domain.rate_text
        return {
            "object": "metrics",
            "currency": scope.currency,
            "test_clock": scope.test_clock_id,
            "start": format_timestamp(start),
            "end": format_timestamp(end),
            "mrr_subtracts_discounts": scope.subtract_discounts,
            "mrr": {"start": start_mrr, "end": end_mrr},
            "arr": end_mrr * 12,
            "customers": {"start": len(at_start), "end": len(at_end), "churned": lost},
            "movements": {
                "view": view.value,
                **{
                    kind.value: {
                        "amount": moved.amount(kind),
                        "count": moved.counts.get(kind, 0),
                        "customers": moved.customers.get(kind, 0),
                    }
                    for kind in domain.Movement
                },
                "net_new": moved.net_new,
            },
            "churn": {
                # Revenue churn is computed from these movements; customer churn compares the two ends.
                "computed_from": f"{view.value}_movements",
                "gross_revenue": rate(churn.gross_revenue),
                "net_revenue": rate(churn.net_revenue),
                "customer": rate(churn.customer),
            },
            "retention": {"net": rate(kept.net), "gross": rate(kept.gross)},
            "arpa": domain.to_minor(arpa) if arpa is not None else None,
            "ltv": domain.to_minor(ltv) if ltv is not None else None,
            "trials": {
                "converted": converted,
                "ended": ended,
                "conversion": rate(domain.trial_conversion(converted, ended)),
            },
        }
