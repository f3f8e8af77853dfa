"""GET /v1/metrics (a window's MRR, movements, churn, retention, ARPA, LTV, trial conversion),
GET /v1/metrics/mrr (MRR at an instant, per customer) and GET /v1/metrics/cohorts. Scope metrics:read,
platform keys only: these are the vendor's numbers across all its customers. Amounts are integer minor
units of `currency`, per month (ARR: per year)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import Clock, format_timestamp
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.money import normalize_currency
from gateway.kernel.periods import add_months
from gateway.metrics.domain import MovementView
from gateway.metrics.payments import PaymentMetrics, PaymentScope
from gateway.metrics.service import MetricsService, Scope
from gateway.subscriptions.clocks import TestClockNotFound
from gateway.subscriptions.repository import SubscriptionRepository
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.timestamps import parse_timestamp

Currency = Annotated[str, QueryParameter(name="currency", min_length=3, max_length=3)]
TestClock = Annotated[
    str | None,
    QueryParameter(
        name="test_clock",
        max_length=40,
        description="Look at the customers of this test clock, at its time (default: wall-clock customers)",
    ),
]


async def _scope_and_now(
    session: AsyncSession, clock: Clock, state: State, currency: str, test_clock: str | None
) -> tuple[Scope, datetime]:
    try:
        code = normalize_currency(currency)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="currency") from exc
    now = clock.now()
    if test_clock is not None:
        row = await SubscriptionRepository(session).get_clock(test_clock)
        if row is None:
            raise TestClockNotFound(f"no test clock {test_clock!r}")
        now = row.frozen_time
    return Scope(code, test_clock, state.settings.metrics_mrr_subtract_discounts), now


class MetricsController(Controller):
    path = "/metrics"
    tags = ["metrics"]

    @get(
        "",
        opt={"scope": "metrics:read"},
        responses=ERROR_RESPONSES,
        summary="A window's MRR, ARR, MRR movements, churn, NRR/GRR, ARPA, LTV, trial conversion and "
        "payment success",
        description="Amounts in minor units of `currency`; rates as decimal strings (0.2000 = 20 %), null "
        "when undefined (no base). The window is half-open, [start, end): a change at exactly `start` is "
        "in it, one at exactly `end` is in the next window (a calendar month owns its first instant); "
        "`mrr.start` and `mrr.end` are the MRR just before each. Default: the month up to now. "
        "`movements=net` (default) gives each customer's net change over the window; `movements=each` "
        "every change in it, as ChartMogul's MRR movements report (an upgrade and a downgrade back both "
        "show). Revenue churn rates are computed from the movements chosen (`churn.computed_from`). "
        "`payments`: of the invoices whose first payment attempt falls in the window, the share paid at "
        "that attempt (`first_attempt_success_rate`) and paid at all so far (`final_success_rate`); the "
        "window's failed attempts by decline code, and their amount (`failed_amount`).",
    )
    async def summary(
        self,
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        state: State,
        currency: Currency = "USD",
        start: Annotated[str | None, QueryParameter(name="start", max_length=40)] = None,
        end: Annotated[str | None, QueryParameter(name="end", max_length=40)] = None,
        test_clock: TestClock = None,
        movements: Annotated[
            Literal["net", "each"],
            QueryParameter(
                name="movements",
                description="net: each customer's net change over the window; each: every change in it",
            ),
        ] = "net",
    ) -> dict[str, Any]:
        scope, now = await _scope_and_now(session, clock, state, currency, test_clock)
        until = parse_timestamp(end, "end") or now
        since = parse_timestamp(start, "start") or add_months(until, -1)
        if since >= until:
            raise ValidationFailed("start must be before end", field="start")
        result = await MetricsService(session).summary(scope, since, until, MovementView(movements))
        payment_scope = PaymentScope(scope.currency, scope.test_clock_id)
        result["payments"] = await PaymentMetrics(session).summary(payment_scope, since, until)
        return result

    @get(
        "/mrr",
        opt={"scope": "metrics:read"},
        responses=ERROR_RESPONSES,
        summary="MRR at an instant (default now), in total and per customer, largest first",
    )
    async def mrr(
        self,
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        state: State,
        currency: Currency = "USD",
        at: Annotated[str | None, QueryParameter(name="at", max_length=40)] = None,
        test_clock: TestClock = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        scope, now = await _scope_and_now(session, clock, state, currency, test_clock)
        instant = parse_timestamp(at, "at") or now
        by_customer = await MetricsService(session).mrr_by_customer(scope, instant)
        ranked = sorted(by_customer.items(), key=lambda kv: (-kv[1], kv[0]))
        total = sum(by_customer.values())
        return {
            "object": "mrr",
            "currency": scope.currency,
            "at": format_timestamp(instant),
            "mrr": total,
            "arr": total * 12,
            "customers": len(by_customer),
            "data": [{"customer": c, "mrr": v} for c, v in ranked[:limit]],
            "has_more": len(ranked) > limit,
        }

    @get(
        "/cohorts",
        opt={"scope": "metrics:read"},
        responses=ERROR_RESPONSES,
        summary="Monthly cohorts: customers by the month they first paid, and who of them still pays",
        description="Each cohort lists, at the end of its first month (month 0) and of every later month "
        "up to now, how many of its customers still have MRR and their MRR.",
    )
    async def cohorts(
        self,
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        state: State,
        currency: Currency = "USD",
        start: Annotated[
            str | None,
            QueryParameter(
                name="start",
                max_length=40,
                description="The first cohort's month (the timestamp's month, from its 1st, UTC); "
                "default: `months` back from the current month",
            ),
        ] = None,
        months: Annotated[int, QueryParameter(name="months", ge=1, le=36)] = 12,
        test_clock: TestClock = None,
    ) -> dict[str, Any]:
        scope, now = await _scope_and_now(session, clock, state, currency, test_clock)
        this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first = parse_timestamp(start, "start") or add_months(this_month, 1 - months)
        first = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rows = await MetricsService(session).cohorts(scope, first, months, now)
        start = format_timestamp(first)
        return {"object": "cohorts", "currency": scope.currency, "start": start, "data": rows}


CONTROLLERS = [MetricsController]
