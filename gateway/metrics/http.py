"""GET /v1/metrics (a window's MRR, movements, churn, retention, ARPA, LTV, trial conversion),
GET /v1/metrics/mrr (MRR at an instant, per customer) and GET /v1/metrics/cohorts. Scope metrics:read,
platform keys only: these are the vendor's numbers across all its customers. Amounts are integer minor
units of `currency`, per month (ARR: per year)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import Clock, format_timestamp
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.periods import add_months
from gateway.metrics.domain import MovementView
from gateway.metrics.report import SegmentQuery, scope_and_now, window_report
from gateway.metrics.service import MetricsService
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


def provide_segment(
    plan: Annotated[
        str | None, QueryParameter(name="plan", max_length=80, description="Only this plan (id or key)")
    ] = None,
    interval: Annotated[
        str | None,
        QueryParameter(name="interval", max_length=10, description="Only prices of this interval"),
    ] = None,
    country: Annotated[
        str | None, QueryParameter(name="country", max_length=2, description="Only customers of this country")
    ] = None,
    metadata: Annotated[
        list[str] | None,
        QueryParameter(
            name="metadata",
            max_items=5,
            description="Only customers whose metadata has this `key:value` (repeat for more; all must hold)",
        ),
    ] = None,
) -> SegmentQuery:
    return SegmentQuery(plan, interval, country, tuple(item[:200] for item in metadata or ()))


class MetricsController(Controller):
    path = "/metrics"
    tags = ["metrics"]
    dependencies = {"segment": Provide(provide_segment, sync_to_thread=False)}

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
        "`churn.by_reason`: the customers lost in the window and the MRR they had at its start, by the "
        "feedback they gave when canceling (`unspecified`: none given, or ended unpaid/expired). "
        "`payments`: of the invoices whose first payment attempt falls in the window, the share paid at "
        "that attempt (`first_attempt_success_rate`) and paid at all so far (`final_success_rate`); the "
        "window's failed attempts by decline code, and their amount (`failed_amount`). `dunning`: runs "
        "started in the window and where they stand, recovery rate (recovered / recovered + "
        "exhausted), recovered revenue and time to recover (runs recovered in the window), "
        "involuntary churn (MRR lost to exhausted dunning) and voluntary churn (the rest of the churn). "
        "`plan_changes`: moves between plans in the window (from, to, how many, how many raised or lowered "
        "the MRR, the MRR they added). Segments: `plan`, `interval`, `country`, `metadata=key:value` narrow "
        "every figure (a subscription counts in a plan's segment while it is on that plan, so a move from "
        "Basic to Pro is contraction or churn in Basic and new MRR in Pro); `payments` and `dunning` count "
        "the segment's invoices: of its customers, and of a subscription on its plan or interval when the "
        "invoice was created (a Basic renewal's failed payment stays Basic's after an upgrade).",
    )
    async def summary(
        self,
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        state: State,
        segment: NamedDependency[SegmentQuery],
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
        scope, now = await scope_and_now(session, clock, state, currency, test_clock, segment)
        until = parse_timestamp(end, "end") or now
        since = parse_timestamp(start, "start") or add_months(until, -1)
        if since >= until:
            raise ValidationFailed("start must be before end", field="start")
        return await window_report(session, scope, since, until, MovementView(movements))

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
        segment: NamedDependency[SegmentQuery],
        currency: Currency = "USD",
        at: Annotated[str | None, QueryParameter(name="at", max_length=40)] = None,
        test_clock: TestClock = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        scope, now = await scope_and_now(session, clock, state, currency, test_clock, segment)
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
        segment: NamedDependency[SegmentQuery],
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
        scope, now = await scope_and_now(session, clock, state, currency, test_clock, segment)
        this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        first = parse_timestamp(start, "start") or add_months(this_month, 1 - months)
        first = first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rows = await MetricsService(session).cohorts(scope, first, months, now)
        start = format_timestamp(first)
        return {"object": "cohorts", "currency": scope.currency, "start": start, "data": rows}


CONTROLLERS = [MetricsController]
