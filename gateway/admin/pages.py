"""The operator console's pages (WEB.md, issue #14). Each page is a row of the permission matrix with the
staff scope of the /v1 operation it mirrors, so a staff member sees a page exactly when the API would
answer them; each calls the same service as that operation.

- `GET /admin`: the console's front door (the login link lands here): its sections.
- `GET /admin/dashboard`: KPIs and charts per calendar month (gateway/admin/dashboard.py), filters
  `currency`, `test_clock`, `months` and the segment of GET /v1/metrics (`plan`, `interval`, `country`,
  `metadata=key:value`), and each month's moves between plans; `/admin/dashboard/data` is the charts' JSON and
  `/admin/dashboard/csv/{chart}` each chart's CSV (`cohorts` too).
- `/admin/catalog/grid…`: the tier grid (gateway/admin/pages_catalog.py).
- `/admin/coupons…`: coupons and promotion codes (gateway/admin/pages_coupons.py).
- `/admin/catalog`, `/admin/catalog/prices`: products, plans, add-ons, prices (gateway/admin/pages_prices.py).
- `/admin/catalog/plans/{plan}/versions`: a plan's versions, their subscribers, and moving subscribers
  to a version by rule (gateway/admin/pages_versions.py).
- `/admin/customers…`: customer search, a customer's page and its actions (gateway/admin/pages_customers.py).
- `/admin/policies…`: the policy as a matrix, a draft with its diff and what-if, publish, restore
  (gateway/admin/pages_policies.py).
- `/admin/audit`, `/admin/jobs`: the audit log with filters; readiness, jobs, relay and queues
  (gateway/admin/pages_operations.py).
- `/admin/staff…`: the staff, invitations, roles, deactivation (gateway/admin/pages_staff.py).
- `/admin/webhooks…`: endpoints, deliveries, resend and replay (gateway/admin/pages_webhooks.py).
- `/admin/sign-in`, `/admin/sso…`: staff sign-in with the platform's SSO (gateway/admin/pages_sign_in.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin import (
    dashboard,
    pages_catalog,
    pages_coupons,
    pages_customers,
    pages_operations,
    pages_policies,
    pages_prices,
    pages_sign_in,
    pages_staff,
    pages_versions,
    pages_webhooks,
)
from gateway.catalog import CatalogService
from gateway.catalog.repository import CatalogRepository
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.periods import Interval
from gateway.metrics.http import provide_segment
from gateway.metrics.report import SegmentQuery, scope_and_now
from gateway.metrics.service import Scope, Segment
from gateway.webui.pages import page_router, render_page

Currency = Annotated[str, QueryParameter(name="currency", min_length=3, max_length=3)]
TestClock = Annotated[str | None, QueryParameter(name="test_clock", max_length=40)]
Months = Annotated[int, QueryParameter(name="months", ge=1, le=24)]
# The segment filters: GET /v1/metrics's own parameters (plan, interval, country, metadata).
SEGMENT = {"segment": Provide(provide_segment, sync_to_thread=False)}


def _filters(currency: str, test_clock: str | None, months: int, segment: SegmentQuery) -> dict[str, Any]:
    if months not in dashboard.MONTH_CHOICES:
        raise ValidationFailed(f"months must be one of {dashboard.MONTH_CHOICES}", field="months")
    return {
        "currency": currency.upper(),
        "test_clock": test_clock or None,
        "months": months,
        # The segment as the form shows it (GET /v1/metrics's parameters, one metadata pair here).
        "plan": segment.plan or None,
        "interval": segment.interval or None,
        "country": (segment.country or "").upper() or None,
        "metadata": next((m for m in segment.metadata if m.strip()), None),
    }


def _query(filters: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in filters.items() if v is not None})


async def _plans(session: AsyncSession, clock: Clock) -> dict[str, str]:
    """Plan id → name, for the plan filter and the plan changes table (a catalog has tens of plans)."""
    page = await CatalogService(CatalogRepository(session), clock).list_plans(
        after=None, limit=200, kind=None, product_id=None, active=None
    )
    return {plan.id: plan.name for plan in page.items}


async def _scope(
    session: AsyncSession, clock: Clock, state: State, filters: dict[str, Any]
) -> tuple[Scope, datetime]:
    segment = SegmentQuery(
        filters["plan"], filters["interval"], filters["country"], (filters["metadata"] or "",)
    )
    return await scope_and_now(session, clock, state, filters["currency"], filters["test_clock"], segment)


@get("/", summary="The console's front door")
async def console_home(request: Request[Any, Any, Any]) -> Template:
    return render_page(request, "admin/home.html", package="admin")


@get("/dashboard", summary="The KPI dashboard", dependencies=SEGMENT)
async def dashboard_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    segment: NamedDependency[SegmentQuery],
    currency: Currency = "USD",
    test_clock: Annotated[str | None, QueryParameter(name="test_clock", max_length=40)] = None,
    months: Months = 12,
) -> Template:
    filters = _filters(currency, test_clock, months, segment)
    scope, now = await _scope(session, clock, state, filters)
    shown = await dashboard.board(session, scope, now, months)
    rows = shown.months
    cohort_rows = await dashboard.cohorts(session, scope, now, months, shown.history)
    return render_page(
        request,
        "admin/dashboard.html",
        {
            "filters": filters,
            "query": _query(filters),
            "months": rows,
            "latest": rows[-1].report if rows else None,
            "cohorts": cohort_rows,
            "churn_reasons": dashboard.churn_by_reason(rows),
            "shade": dashboard.retention_share,
            "month_options": [(str(n), str(n)) for n in dashboard.MONTH_CHOICES],
            "charts": list(dashboard.CHARTS),
            "plans": await _plans(session, clock),
            "interval_options": [(i.value, i.value) for i in Interval],
            "segmented": scope.segment != Segment(),
        },
        package="admin",
    )


@get("/dashboard/data", summary="The dashboard charts' data (JSON)", dependencies=SEGMENT)
async def dashboard_data(
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    segment: NamedDependency[SegmentQuery],
    currency: Currency = "USD",
    test_clock: TestClock = None,
    months: Months = 12,
) -> Response[dict[str, Any]]:
    filters = _filters(currency, test_clock, months, segment)
    scope, now = await _scope(session, clock, state, filters)
    rows = await dashboard.monthly(session, scope, now, months)
    return Response(dashboard.series(rows), headers={"Cache-Control": "no-store"})


@get("/dashboard/csv/{chart:str}", summary="One dashboard chart as CSV", dependencies=SEGMENT)
async def dashboard_csv(
    chart: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    segment: NamedDependency[SegmentQuery],
    currency: Currency = "USD",
    test_clock: TestClock = None,
    months: Months = 12,
) -> Response[str]:
    if chart != "cohorts" and chart not in dashboard.CHARTS:
        raise ValidationFailed(f"no chart {chart[:40]!r}", field="chart")
    filters = _filters(currency, test_clock, months, segment)
    scope, now = await _scope(session, clock, state, filters)
    if chart == "cohorts":
        body = dashboard.cohorts_csv(await dashboard.cohorts(session, scope, now, months))
    else:
        body = dashboard.chart_csv(chart, await dashboard.monthly(session, scope, now, months))
    name = f"{chart}-{filters['currency'].lower()}.csv"
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


ADMIN_PAGES = page_router(
    path="/admin",
    route_handlers=[
        console_home,
        dashboard_page,
        dashboard_data,
        dashboard_csv,
        *pages_catalog.ROUTES,
        *pages_coupons.ROUTES,
        *pages_prices.ROUTES,
        *pages_versions.ROUTES,
        *pages_customers.ROUTES,
        *pages_policies.ROUTES,
        *pages_operations.ROUTES,
        *pages_sign_in.ROUTES,
        *pages_staff.ROUTES,
        *pages_webhooks.ROUTES,
    ],
)
