"""The catalog at a glance, and new prices (issue #14, Catalog: "plans ..., prices per currency and
interval, add-ons").

- `GET /admin/catalog` (catalog:read): each product's plans (base plans and add-ons, their current
  version and state) with every price: lookup key, model, interval and the amount in each currency.
- `POST /admin/catalog/prices` (catalog:write): a flat or per-seat price for a plan in one currency,
  the amount typed in major units ("29.00" USD is 2900), exactly as `POST /v1/prices` makes one
  (`CatalogService.create_price`). A refusal (a taken lookup key, an unknown currency, a bad amount) is
  shown beside its field (422) and creates nothing; a new price is audited.
Tiered, package and metered prices have more terms than a form shows well: the API makes those.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.forms import form_values, minor_units
from gateway.audit.service import record
from gateway.catalog import CatalogService
from gateway.catalog.models import Plan, Price, Product
from gateway.catalog.repository import CatalogRepository
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError, NotFound
from gateway.webui.pages import render_page

MAX_ROWS = 200  # products, plans and prices a page shows; a catalog is far smaller
PRICE_FIELDS = ("plan", "model", "interval", "currency", "amount", "lookup_key", "nickname")


@dataclass(frozen=True, slots=True)
class PlanRow:
    plan: Plan
    version: int
    prices: list[Price]


@dataclass(frozen=True, slots=True)
class ProductSection:
    product: Product
    plans: list[PlanRow]


def _error_field(refused: DomainError) -> str:
    """The form field a refusal is shown beside: the service names `currency_options.EUR...` for an
    amount in a currency, or no field at all for an unknown plan (a 404)."""
    given = str(refused.extra.get("field") or "")
    if given in PRICE_FIELDS:
        return given
    if isinstance(refused, NotFound):
        return "plan"
    return "currency" if given == "currency_options" else "amount"


def _catalog(session: AsyncSession, clock: Clock) -> CatalogService:
    return CatalogService(CatalogRepository(session), clock)


async def sections(catalog: CatalogService) -> list[ProductSection]:
    products = (await catalog.list_products(after=None, limit=MAX_ROWS, active=None)).items
    plans = (
        await catalog.list_plans(after=None, limit=MAX_ROWS, kind=None, product_id=None, active=None)
    ).items
    prices = (
        await catalog.list_prices(after=None, limit=MAX_ROWS, plan_id=None, active=None, currency=None)
    ).items
    by_plan: dict[str, list[Price]] = {}
    for price in prices:
        by_plan.setdefault(price.plan_id, []).append(price)
    result = []
    for product in products:
        rows = []
        for plan in sorted((p for p in plans if p.product_id == product.id), key=lambda p: (p.kind, p.rank)):
            version = (await catalog.terms(plan.id)).version.version
            rows.append(PlanRow(plan, version, by_plan.get(plan.id, [])))
        result.append(ProductSection(product, rows))
    return result


async def _page(
    request: Request[Any, Any, Any],
    catalog: CatalogService,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    listed = await sections(catalog)
    plan_options = [(row.plan.key, row.plan.name) for s in listed for row in s.plans if row.plan.active]
    return render_page(
        request,
        "admin/catalog.html",
        {
            "sections": listed,
            "plan_options": plan_options,
            "values": values
            or {**dict.fromkeys(PRICE_FIELDS, ""), "model": "flat", "interval": "month", "currency": "USD"},
            "errors": errors or {},
            "done": request.query_params.get("done", "")[:40],
        },
        package="admin",
        status_code=422 if errors else 200,
    )


@get("/catalog", summary="The catalog: products, plans, add-ons and their prices")
async def catalog_page(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Template:
    return await _page(request, _catalog(session, clock))


@post("/catalog/prices", summary="Create a flat or per-seat price for a plan", status_code=303)
async def create_price(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Template | Redirect:
    catalog = _catalog(session, clock)
    values = form_values(await request.form(), PRICE_FIELDS)
    try:
        currency = values["currency"].upper()
        amount = minor_units(values["amount"], currency, "amount")
        async with session.begin_nested():  # a refusal leaves nothing behind
            price = await catalog.create_price(
                plan_id=values["plan"],
                model=values["model"],
                interval=values["interval"],
                currency_options={currency: {"unit_amount": str(amount)}},
                lookup_key=values["lookup_key"] or None,
                nickname=values["nickname"] or None,
            )
    except DomainError as refused:
        return await _page(request, catalog, values, {_error_field(refused): refused.detail})
    await record(
        session,
        action="admin.price_created",
        at=clock.now(),
        target=price.id,
        data={"plan": values["plan"], "currency": currency, "amount": amount, "interval": price.interval},
    )
    return Redirect(f"/admin/catalog?done=price_created#price-{price.id}", status_code=303)


ROUTES = [catalog_page, create_price]
