"""Coupons and promotion codes in the console (issue #14, Catalog: "coupons and promotion codes").

- `GET /admin/coupons` (catalog:read): every coupon with its terms, redemptions and state, and every
  promotion code with its coupon, redemptions and expiry; the two forms below for staff who may write.
- `POST /admin/coupons` (catalog:write): a new coupon, exactly as `POST /v1/coupons` makes one
  (`CouponService.create_coupon`): percent off, or an amount off in one currency typed in major units
  ("5.00" USD is 500), once / forever / for some months, an optional redemption limit.
- `POST /admin/coupons/promotion_codes` (catalog:write): a customer-facing code for a coupon
  (`CouponService.create_promotion_code`, as `POST /v1/promotion_codes`), an optional limit and expiry day.
- `POST /admin/coupons/{id}/deactivate` (catalog:write): no new redemptions (`DELETE /v1/coupons/{id}`);
  discounts already redeemed keep applying.

A refused form (bad terms, a taken code, an expiry in the past) is shown again with the error beside its
field (422) and creates nothing. Every change is an outbox event of the service and an audit entry with
the staff member as actor.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.forms import end_of_day, form_values, minor_units, whole
from gateway.audit.service import record
from gateway.catalog.coupons import CouponService
from gateway.catalog.repository import CatalogRepository
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError
from gateway.webui.pages import render_page

MAX_ROWS = 100  # the newest coupons and codes a page lists
COUPON_FIELDS = ("name", "kind", "percent_off", "amount_off", "currency", "duration", "months", "max")
CODE_FIELDS = ("coupon", "code", "code_max", "expires")
# The service's field names (as the API reports them) → the form's fields, where the error is shown.
COUPON_ERROR_FIELDS = {
    "percent_off": "percent_off",
    "amount_off": "amount_off",
    "currency": "currency",
    "duration": "duration",
    "duration_in_months": "months",
    "max_redemptions": "max",
}
CODE_ERROR_FIELDS = {
    "coupon": "coupon",
    "code": "code",
    "max_redemptions": "code_max",
    "expires_at": "expires",
}


def _error_field(refused: DomainError, fields: dict[str, str], default: str) -> str:
    return fields.get(str(refused.extra.get("field") or ""), default)


def _coupons(session: AsyncSession, clock: Clock) -> CouponService:
    return CouponService(CatalogRepository(session), clock)


async def _page(
    request: Request[Any, Any, Any],
    coupons: CouponService,
    *,
    coupon_values: dict[str, str] | None = None,
    code_values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    listed = (await coupons.list_coupons(after=None, limit=MAX_ROWS, active=None)).items
    codes = (
        await coupons.list_promotion_codes(
            after=None, limit=MAX_ROWS, code=None, coupon=None, active=None, customer=None, scope=None
        )
    ).items
    return render_page(
        request,
        "admin/coupons.html",
        {
            "coupons": listed,
            "codes": codes,
            "valid": {row.id: coupons.valid(row) for row in listed},
            "coupons_options": [(row.id, row.name or row.id) for row in listed if row.active],
            "coupon_values": coupon_values
            or {**dict.fromkeys(COUPON_FIELDS, ""), "kind": "percent", "duration": "once", "currency": "USD"},
            "code_values": code_values or dict.fromkeys(CODE_FIELDS, ""),
            "errors": errors or {},
            "done": request.query_params.get("done", "")[:40],
        },
        package="admin",
        status_code=422 if errors else 200,
    )


@get("/coupons", summary="Coupons and promotion codes")
async def coupons_page(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Template:
    return await _page(request, _coupons(session, clock))


@post("/coupons", summary="Create a coupon", status_code=303)
async def create_coupon(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Template | Redirect:
    coupons = _coupons(session, clock)
    values = form_values(await request.form(), COUPON_FIELDS)
    try:
        percent = values["kind"] != "amount"
        currency = values["currency"].upper()
        repeating = values["duration"] == "repeating"
        months = whole(values["months"], "duration_in_months") if repeating else None
        async with session.begin_nested():  # a refusal leaves nothing behind
            row = await coupons.create_coupon(
                name=values["name"] or None,
                percent_off=(values["percent_off"] or None) if percent else None,
                amount_off=None if percent else minor_units(values["amount_off"], currency, "amount_off"),
                currency=None if percent else currency,
                duration=values["duration"] or "once",
                duration_in_months=months,
                max_redemptions=whole(values["max"], "max_redemptions"),
            )
    except DomainError as refused:
        field = _error_field(refused, COUPON_ERROR_FIELDS, "name")
        return await _page(request, coupons, coupon_values=values, errors={field: refused.detail})
    await record(
        session, action="admin.coupon_created", at=clock.now(), target=row.id, data={"name": row.name}
    )
    return Redirect(f"/admin/coupons?done=coupon_created#coupon-{row.id}", status_code=303)


@post("/coupons/promotion_codes", summary="Create a promotion code for a coupon", status_code=303)
async def create_promotion_code(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Template | Redirect:
    coupons = _coupons(session, clock)
    values = form_values(await request.form(), CODE_FIELDS)
    try:
        async with session.begin_nested():
            row = await coupons.create_promotion_code(
                coupon=values["coupon"],
                code=values["code"] or None,
                max_redemptions=whole(values["code_max"], "max_redemptions"),
                expires_at=end_of_day(values["expires"], "expires_at"),
            )
    except DomainError as refused:
        field = _error_field(refused, CODE_ERROR_FIELDS, "code")
        return await _page(request, coupons, code_values=values, errors={field: refused.detail})
    await record(
        session, action="admin.promotion_code_created", at=clock.now(), target=row.id, data={"code": row.code}
    )
    return Redirect("/admin/coupons?done=code_created", status_code=303)


@post("/coupons/{coupon_id:str}/deactivate", summary="Deactivate a coupon", status_code=303)
async def deactivate_coupon(
    coupon_id: FromPath[str], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Redirect:
    row = await _coupons(session, clock).delete_coupon(coupon_id[:40])
    await record(session, action="admin.coupon_deactivated", at=clock.now(), target=row.id, data={})
    return Redirect("/admin/coupons?done=coupon_deactivated", status_code=303)


ROUTES = [coupons_page, create_coupon, create_promotion_code, deactivate_coupon]
