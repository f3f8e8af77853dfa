"""Reading the metrics: MRR at an instant from the `mrr_changes` history, and a window's movements,
churn, retention, ARPA, LTV and trial conversion (domain.py has the definitions).

Customers on a test clock are their own world: a query looks either at the wall-clock customers (the
default) or at the customers of one test clock, at that clock's time.

A segment narrows every figure to some customers (country, a metadata key's value) and to some
subscriptions (plan, billing interval). A subscription counts in a plan's segment while its latest change
is on that plan: one moving from Basic to Pro leaves Basic's MRR (contraction or churn there) and enters
Pro's, so each segment's opening MRR plus its movements is its closing MRR.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from gateway.billing.models import Invoice
from gateway.customers.models import Customer
from gateway.kernel.clock import ensure_utc, format_timestamp
from gateway.kernel.periods import add_months
from gateway.metrics import domain
from gateway.metrics.models import MetricsSubscription, MrrChange
from gateway.subscriptions.domain import CancellationFeedback
from gateway.subscriptions.models import Subscription

# The reasons churn is reported by: the cancel flow's answers, and `unspecified` for the rest.
CHURN_REASONS = tuple(reason.value for reason in CancellationFeedback)
UNSPECIFIED = "unspecified"


@dataclass(frozen=True, slots=True)
class Segment:
    """Which customers and subscriptions a figure counts; empty: all of them."""

    plan: str | None = None  # a plan id: subscriptions whose latest change is on it
    interval: str | None = None  # month, year, ...: of the subscription's price
    country: str | None = None  # the customer's country (ISO 3166-1 alpha-2)
    metadata: tuple[tuple[str, str], ...] = ()  # the customer's metadata: key = value, all of them

    @property
    def by_customer(self) -> bool:
        return self.country is not None or bool(self.metadata)

    @property
    def by_subscription(self) -> bool:
        return self.plan is not None or self.interval is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "interval": self.interval,
            "country": self.country,
            "metadata": dict(self.metadata),
        }


@dataclass(frozen=True, slots=True)
class Scope:
    currency: str
    test_clock_id: str | None = None  # None: the wall-clock customers
    subtract_discounts: bool = True
    segment: Segment = Segment()


def customer_filter(column: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """The conditions on a customer id column that keep the segment's customers (none when it has no
    customer criteria)."""
    segment = scope.segment
    if not segment.by_customer:
        return []
    wanted: list[ColumnElement[bool]] = []
    if segment.country is not None:
        wanted.append(Customer.country == segment.country)
    for key, value in segment.metadata:
        wanted.append(Customer.metadata_[key].as_string() == value)
    return [column.in_(select(Customer.id).where(*wanted))]


def subscription_criteria(plan_column: Any, interval_column: Any, scope: Scope) -> list[ColumnElement[bool]]:
    segment = scope.segment
    criteria: list[ColumnElement[bool]] = []
    if segment.plan is not None:
        criteria.append(plan_column == segment.plan)
    if segment.interval is not None:
        criteria.append(interval_column == segment.interval)
    return criteria


def subscription_in_segment_at(
    subscription_column: Any, at_column: Any, scope: Scope
) -> list[ColumnElement[bool]]:
    """The conditions that keep a subscription which was, at an instant, on the segment's plan and
    interval: its latest change at or before that instant is (the rule MRR counts by). None when the
    segment names no plan or interval."""
    criteria = subscription_criteria(MrrChange.plan_id, MrrChange.interval, scope)
    if not criteria:
        return []
    latest = aliased(MrrChange)
    latest_seq = (
        select(latest.seq)
        .where(latest.subscription_id == subscription_column, latest.at <= at_column)
        .order_by(latest.at.desc(), latest.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    # Two levels down from the outer row, so its table is named for correlation (automatic correlation
    # only looks one level up and would join a second copy of it instead).
    latest_seq = latest_seq.correlate(subscription_column.table, at_column.table)
    return [exists().where(MrrChange.seq == latest_seq, *criteria)]


def invoice_filter(invoice_column: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """The conditions on an invoice id column (a payment's, a dunning run's) that keep the segment's
    invoices: of its customers and, with a plan or interval, of a subscription that was on them when the
    invoice was created. So a Basic renewal's failed payment stays Basic's after an upgrade to Pro, and
    an invoice of no subscription (a one-off) is in no plan's segment."""
    segment = scope.segment
    if not segment.by_customer and not segment.by_subscription:
        return []
    kept = select(Invoice.id).where(
        *customer_filter(Invoice.tenant_id, scope),
        *subscription_in_segment_at(Invoice.subscription_id, Invoice.created_at, scope),
    )
    return [invoice_column.in_(kept)]


def change_value(scope: Scope) -> Any:
    """A change row's MRR as the scope counts it: net of recurring discounts (or not, by the setting),
    and 0 when the subscription is, by that change, outside the segment's plan or interval."""
    value = MrrChange.gross - MrrChange.discount if scope.subtract_discounts else MrrChange.gross
    criteria = subscription_criteria(MrrChange.plan_id, MrrChange.interval, scope)
    return case((and_(*criteria), value), else_=0) if criteria else value


class MetricsService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _clock_filter(self, column: InstrumentedAttribute[str | None], scope: Scope) -> ColumnElement[bool]:
        return column.is_(None) if scope.test_clock_id is None else column == scope.test_clock_id

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
        query = select(MrrChange.tenant_id, MrrChange.subscription_id, change_value(scope)).where(
            MrrChange.currency == scope.currency,
            in_time(MrrChange.at),
            self._clock_filter(MrrChange.test_clock_id, scope),
            *customer_filter(MrrChange.tenant_id, scope),
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
                change_value(scope),
            )
            .where(
                MrrChange.currency == scope.currency,
                MrrChange.at >= start,
                MrrChange.at < end,
                self._clock_filter(MrrChange.test_clock_id, scope),
                *customer_filter(MrrChange.tenant_id, scope),
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
                *customer_filter(MrrChange.tenant_id, scope),
                change_value(scope) > 0,
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
                *customer_filter(MrrChange.tenant_id, scope),
                change_value(scope) > 0,
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
        bounds, ends = month_ends(start, months, now)
        at_end = [await self.mrr_by_customer(scope, end, before=True) for end in ends]
        return cohort_rows(bounds, at_end, await self.first_paid(scope), months)

    async def trial_endings(
        self, scope: Scope, start: datetime, end: datetime
    ) -> list[tuple[datetime, bool]]:
        """Every trial that ended in [start, end): when, and whether it became paid (for many windows
        at once; `trials` counts one window in SQL)."""
        query = select(MetricsSubscription.trial_ended_at, MetricsSubscription.trial_converted).where(
            MetricsSubscription.currency == scope.currency,
            MetricsSubscription.trial_ended_at >= start,
            MetricsSubscription.trial_ended_at < end,
            self._clock_filter(MetricsSubscription.test_clock_id, scope),
            *customer_filter(MetricsSubscription.tenant_id, scope),
            *subscription_criteria(MetricsSubscription.plan_id, MetricsSubscription.interval, scope),
        )
        rows = (await self.session.execute(query)).all()
        return [(ensure_utc(at), bool(flag)) for at, flag in rows if at is not None]

    async def plan_flows(self, scope: Scope, start: datetime, end: datetime) -> list[domain.PlanFlow]:
        """Moves between plans in `[start, end)` (`domain.plan_flows`) of the segment's customers; with a
        plan or interval in the segment, the moves with it on one side or the other."""
        value = MrrChange.gross - MrrChange.discount if scope.subtract_discounts else MrrChange.gross
        in_scope = [
            MrrChange.currency == scope.currency,
            self._clock_filter(MrrChange.test_clock_id, scope),
            *customer_filter(MrrChange.tenant_id, scope),
        ]
        moved = select(MrrChange.subscription_id).where(*in_scope, MrrChange.at >= start, MrrChange.at < end)
        query = (
            select(MrrChange.at, MrrChange.subscription_id, MrrChange.plan_id, MrrChange.interval, value)
            .where(*in_scope, MrrChange.at < end, MrrChange.subscription_id.in_(moved))
            .order_by(MrrChange.at, MrrChange.seq)
        )
        rows = (await self.session.execute(query)).all()
        changes = [(ensure_utc(at), sub, plan, interval, int(v)) for at, sub, plan, interval, v in rows]
        segment = scope.segment
        return domain.plan_flows(changes, start, plan=segment.plan, interval=segment.interval)

    async def churn_by_reason(
        self, lost_mrr: dict[str, int], start: datetime, end: datetime
    ) -> dict[str, dict[str, int]]:
        """{reason: {customers, mrr}} for the churned customers (customer → MRR at the window's start).
        A customer's reason is the feedback of its subscription canceled last before `end`;
        `unspecified` when it gave none, or its subscription ended another way (unpaid, expired)."""
        counts: dict[str, dict[str, int]] = {
            reason: {"customers": 0, "mrr": 0} for reason in (*CHURN_REASONS, UNSPECIFIED)
        }
        if not lost_mrr:
            return counts
        query = (
            select(Subscription.tenant_id, Subscription.cancellation_feedback)
            .where(
                Subscription.tenant_id.in_(sorted(lost_mrr)),
                Subscription.status == "canceled",
                Subscription.ended_at < end,
            )
            .order_by(Subscription.ended_at, Subscription.id)
        )
        reason_of = {tenant: feedback for tenant, feedback in (await self.session.execute(query)).all()}
        for customer, mrr in lost_mrr.items():
            reason = reason_of.get(customer) or UNSPECIFIED
            bucket = counts[reason if reason in counts else UNSPECIFIED]
            bucket["customers"] += 1
            bucket["mrr"] += mrr
        return counts

    async def trials(self, scope: Scope, start: datetime, end: datetime) -> tuple[int, int]:
        """(converted, ended) for trials that ended in [start, end)."""
        query = select(MetricsSubscription.trial_converted, func.count()).where(
            MetricsSubscription.currency == scope.currency,
            MetricsSubscription.trial_ended_at >= start,
            MetricsSubscription.trial_ended_at < end,
            self._clock_filter(MetricsSubscription.test_clock_id, scope),
            *customer_filter(MetricsSubscription.tenant_id, scope),
            *subscription_criteria(MetricsSubscription.plan_id, MetricsSubscription.interval, scope),
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
        return await self.summary_of(scope, start, end, view, at_start, at_end, moved)

    async def summary_of(
        self,
        scope: Scope,
        start: datetime,
        end: datetime,
        view: domain.MovementView,
        at_start: dict[str, int],
        at_end: dict[str, int],
        moved: domain.Movements,
        trials: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """`summary` from the window's two ends and its movements, however they were read (the admin
        dashboard reads every month's ends in one pass over the history: gateway/metrics/history.py)."""
        start_mrr, end_mrr = sum(at_start.values()), sum(at_end.values())
        churned = [customer for customer in at_start if at_end.get(customer, 0) == 0]
        lost = len(churned)
        by_reason = await self.churn_by_reason({c: at_start[c] for c in churned}, start, end)
        churn = domain.churn(start_mrr, moved, len(at_start), lost)
        kept = domain.retention(at_start, at_end)
        arpa = domain.arpa(end_mrr, len(at_end))
        ltv = domain.ltv(arpa, churn.customer)
        converted, ended = trials if trials is not None else await self.trials(scope, start, end)
        flows = await self.plan_flows(scope, start, end)
        rate = domain.rate_text
        return {
            "object": "metrics",
            "currency": scope.currency,
            "test_clock": scope.test_clock_id,
            "segment": scope.segment.as_dict(),
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
                # Customers lost in the window (MRR at the start, none at the end) by the reason they
                # gave when canceling, and the MRR they took with them.
                "by_reason": by_reason,
            },
            "retention": {"net": rate(kept.net), "gross": rate(kept.gross)},
            "arpa": domain.to_minor(arpa) if arpa is not None else None,
            "ltv": domain.to_minor(ltv) if ltv is not None else None,
            # Moves between plans in the window, most frequent first (upgrade patterns).
            "plan_changes": [flow.as_dict() for flow in flows],
            "trials": {
                "converted": converted,
                "ended": ended,
                "conversion": rate(domain.trial_conversion(converted, ended)),
            },
        }


def month_ends(start: datetime, months: int, now: datetime) -> tuple[list[datetime], list[datetime]]:
    """The cohorts' month bounds from `start` (`months` + 1 firsts) and the ends measured: each month's
    end, the month in progress measured `now`, none after it."""
    bounds = [add_months(start, i) for i in range(months + 1)]
    ends: list[datetime] = []
    for bound in bounds[1:]:
        ends.append(min(bound, now))
        if bound >= now:
            break
    return bounds, ends


def cohort_rows(
    bounds: list[datetime], at_end: list[dict[str, int]], first: dict[str, datetime], months: int
) -> list[dict[str, Any]]:
    """The cohorts from each month end's MRR per customer and each customer's first paid instant."""
    cohort_of: dict[int, set[str]] = {}  # each customer in its month's cohort, in one pass
    for customer, at in first.items():
        for i in range(months):
            if bounds[i] <= at < bounds[i + 1]:
                cohort_of.setdefault(i, set()).add(customer)
                break
    rows = []
    for i in range(months):
        members = cohort_of.get(i, set())
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
