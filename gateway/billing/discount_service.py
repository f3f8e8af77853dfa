"""Coupons on subscriptions and customers: redeeming them (through the catalog's `CouponService`, which
counts redemptions) and saying which apply to an invoice of a given period (rules 18-19).

A discount row copies the coupon's terms at redemption, so deleting or renaming a coupon later never
changes what a customer was promised.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.billing.discounts import Coupon, CouponDuration, applies_to_period
from gateway.billing.models import Discount
from gateway.billing.rating import rate
from gateway.billing.repository import BillingRepository
from gateway.catalog import CatalogService, CouponService, price_terms
from gateway.catalog.domain import UsageType
from gateway.customers.models import Customer
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.kernel.money import Money
from gateway.kernel.periods import Interval
from gateway.subscriptions.models import Subscription


class DiscountNotFound(NotFound):
    code = "discount_not_found"


def to_coupon(row: Discount) -> Coupon:
    return Coupon(
        id=row.coupon_id,
        duration=CouponDuration(row.duration),
        percent_off=Decimal(row.percent_off) if row.percent_off is not None else None,
        amount_off=Money(row.amount_off, row.currency)
        if row.amount_off is not None and row.currency
        else None,
        duration_in_months=row.duration_in_months,
    )


class DiscountService:
    def __init__(
        self, repository: BillingRepository, coupons: CouponService, catalog: CatalogService
    ) -> None:
        self.repo = repository
        self.coupons = coupons
        self.catalog = catalog

    async def redeem(
        self,
        *,
        customer: Customer,
        subscription: Subscription | None,
        coupon: str | None,
        promotion_code: str | None,
        at: datetime,
    ) -> Discount:
        """Redeem a coupon (id) or promotion code for a subscription, or for every invoice of the
        customer when `subscription` is None. Refusals are the catalog's 404/409 problems."""
        if (coupon is None) == (promotion_code is None):
            raise ValidationFailed("give exactly one of coupon and promotion_code", field="coupon")
        plan_key, currency, subtotal = "", customer.currency or "", None
        if subscription is not None:
            price = await self.catalog.get_price(subscription.price_id)
            plan_key = (await self.catalog.get_plan(subscription.plan_id)).key
            currency = subscription.currency
            terms = price_terms(price)
            if terms.usage_type is UsageType.LICENSED:
                # A minimum amount is judged on what the subscription's period costs before discounts.
                subtotal = rate(terms, currency, subscription.quantity).money.amount
        if not currency:
            raise ValidationFailed(
                "the customer has no currency yet: redeem on a subscription instead", field="customer"
            )
        redemption = await self.coupons.redeem(
            coupon=coupon,
            promotion_code=promotion_code,
            customer_id=customer.id,
            plan_key=plan_key,
            currency=currency,
            first_time=not await self.repo.has_finalized_invoice(customer.id),
            subtotal=subtotal,
            at=at,
        )
        row = Discount(
            id=new_id("di"),
            tenant_id=customer.id,
            subscription_id=subscription.id if subscription is not None else None,
            coupon_id=redemption.coupon_id,
            promotion_code_id=redemption.promotion_code_id,
            duration=redemption.duration.value,
            duration_in_months=redemption.duration_in_months,
            percent_off=str(redemption.percent_off) if redemption.percent_off is not None else None,
            amount_off=redemption.amount_off,
            currency=redemption.currency,
            start=at,
            created_at=at,
        )
        self.repo.add(row)
        await self.repo.flush()
        return row

    async def redeem_for_new_subscription(
        self, sub: Subscription, customer: Customer, request: dict[str, Any], at: datetime
    ) -> None:
        await self.redeem(
            customer=customer,
            subscription=sub,
            coupon=request.get("coupon"),
            promotion_code=request.get("promotion_code"),
            at=at,
        )

    async def active(self, tenant_id: str, subscription_id: str | None) -> Sequence[Discount]:
        return await self.repo.discounts(tenant_id, subscription_id)

    async def coupons_for(self, sub: Subscription, period_start: datetime) -> list[Coupon]:
        """The coupons that discount an invoice of `sub` for the period starting at `period_start`."""
        interval = Interval(sub.interval)
        coupons = []
        for row in await self.repo.discounts(sub.tenant_id, sub.id):
            if row.currency is not None and row.currency != sub.currency:
                continue
            coupon = to_coupon(row)
            if applies_to_period(coupon, row.start, period_start, interval=interval):
                coupons.append(coupon)
        return coupons

    async def remove(self, discount_id: str, *, scope: str | None, at: datetime) -> Discount:
        row = await self.repo.get_discount(discount_id, scope=scope)
        if row is None or row.ended_at is not None:
            raise DiscountNotFound(f"no active discount {discount_id!r}")
        row.ended_at = at
        await self.repo.flush()
        return row
