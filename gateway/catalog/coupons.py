"""Coupon and promotion-code use cases: the catalog side of discounts (billing-rules.md rules 18-19).

The catalog owns the terms and the redemption counters; billing owns the math
(`gateway/billing/discounts.py`) and builds its `Coupon` from the `Redemption` that `redeem` returns.

Transactions: `redeem` runs in the caller's unit of work. When that unit of work is rolled back (every
HTTP request and job is one transaction), the counters roll back with it and nothing needs releasing.
`release` exists for a caller that redeems, then decides *within the same transaction* not to use the
redemption and carries on.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from gateway.catalog.domain import (
    GENERATED_COUPON_PREFIX,
    Checkout,
    CouponDuration,
    CouponState,
    CouponTerms,
    Eligibility,
    PromotionState,
    Redemption,
    Unchecked,
    check_coupon_id,
    check_future,
    coupon_valid,
    eligibility,
    format_percent,
    normalize_code,
    parse_coupon_terms,
    parse_minimum_amount,
)
from gateway.catalog.errors import (
    REFUSALS,
    CouponAlreadyExists,
    CouponCurrencyMismatch,
    CouponExhausted,
    CouponInactive,
    CouponNotApplicable,
    CouponNotFound,
    CustomerNotFound,
    MinimumAmountNotMet,
    NotFirstTimeCustomer,
    PromotionCodeAlreadyExists,
    PromotionCodeExhausted,
    PromotionCodeNotForCustomer,
    PromotionCodeNotFound,
    RedemptionRefused,
)
from gateway.catalog.models import Coupon, PromotionCode
from gateway.catalog.repository import CatalogRepository
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock, ensure_utc
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page

# Generated codes avoid look-alike characters (0/O, 1/I/L) because people type them.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 8


def coupon_terms(row: Coupon) -> CouponTerms:
    """Rebuild the terms of a stored coupon (validated when it was created)."""
    return CouponTerms(
        duration=CouponDuration(row.duration),
        percent_off=Decimal(row.percent_off) if row.percent_off is not None else None,
        amount_off=row.amount_off,
        currency=row.currency,
        currency_options={k: int(v) for k, v in row.currency_options.items()},
        duration_in_months=row.duration_in_months,
    )


def coupon_state(row: Coupon) -> CouponState:
    return CouponState(
        id=row.id,
        terms=coupon_terms(row),
        active=row.active,
        redeem_by=row.redeem_by,
        max_redemptions=row.max_redemptions,
        times_redeemed=row.times_redeemed,
        plans=frozenset(row.applies_to_plans) if row.applies_to_plans is not None else None,
    )


def promotion_state(row: PromotionCode) -> PromotionState:
    return PromotionState(
        id=row.id,
        code=row.code,
        coupon_id=row.coupon_id,
        active=row.active,
        expires_at=row.expires_at,
        max_redemptions=row.max_redemptions,
        times_redeemed=row.times_redeemed,
        customer_id=row.customer_id,
        first_time_transaction=row.first_time_transaction,
        minimum_amount=row.minimum_amount,
        minimum_amount_currency=row.minimum_amount_currency,
    )


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What `check` found: the rows and every reason they would be refused at this checkout."""

    coupon: Coupon
    promotion_code: PromotionCode | None
    eligibility: Eligibility


# redeem() needs a definite answer: a restriction it could not check is a refusal. Only a missing
# subtotal can get here (redeem's other inputs are required), the rest keep the mapping total.
_UNCHECKED_AT_REDEMPTION: dict[Unchecked, tuple[type[RedemptionRefused], str]] = {
    Unchecked.MINIMUM_AMOUNT: (
        MinimumAmountNotMet,
        "the code has a minimum amount and no subtotal was given",
    ),
    Unchecked.CUSTOMER: (PromotionCodeNotForCustomer, "the code is reserved for one customer"),
    Unchecked.FIRST_TIME_TRANSACTION: (NotFirstTimeCustomer, "the code is for first-time customers only"),
    Unchecked.PLAN: (CouponNotApplicable, "the coupon applies to some plans only"),
    Unchecked.CURRENCY: (CouponCurrencyMismatch, "the coupon is an amount in some currencies only"),
}


class CouponService:
    def __init__(self, repository: CatalogRepository, clock: Clock) -> None:
        self.repo = repository
        self.clock = clock

    async def _event(
        self,
        type_: str,
        aggregate_type: str,
        aggregate_id: str,
        data: dict[str, Any],
        tenant: str | None = None,
    ) -> None:
        await record_event(
            self.repo.session,
            DomainEvent(type_, aggregate_type, aggregate_id, self.clock.now(), data=data, tenant_id=tenant),
        )

    def valid(self, row: Coupon, at: datetime | None = None) -> bool:
        """Stripe's `valid` flag: redeemable now (active, before `redeem_by`, below `max_redemptions`)."""
        return coupon_valid(coupon_state(row), at or self.clock.now())

    # coupons ------------------------------------------------------------------------------------
    async def create_coupon(
        self,
        *,
        id: str | None = None,
        name: str | None = None,
        percent_off: Any = None,
        amount_off: Any = None,
        currency: str | None = None,
        currency_options: dict[str, int] | None = None,
        duration: str = CouponDuration.ONCE,
        duration_in_months: int | None = None,
        max_redemptions: int | None = None,
        redeem_by: datetime | None = None,
        applies_to_plans: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Coupon:
        """`id` is optional: a caller-chosen id ("SUMMER20") or a generated "cpn_…" one."""
        now = self.clock.now()
        terms = parse_coupon_terms(
            duration=duration,
            duration_in_months=duration_in_months,
            percent_off=percent_off,
            amount_off=amount_off,
            currency=currency,
            currency_options=currency_options,
        )
        if max_redemptions is not None and (isinstance(max_redemptions, bool) or max_redemptions < 1):
            raise ValidationFailed("max_redemptions must be at least 1", field="max_redemptions")
        if redeem_by is not None:
            redeem_by = check_future(ensure_utc(redeem_by), now, "redeem_by")
        plans = await self._plan_keys(applies_to_plans)
        if id is not None:
            check_coupon_id(id)
            if await self.repo.get_coupon(id) is not None:
                raise CouponAlreadyExists(f"a coupon with id {id!r} exists already", field="id")
        row = Coupon(
            id=id or new_id(GENERATED_COUPON_PREFIX),
            name=name,
            percent_off=format_percent(terms.percent_off) if terms.percent_off is not None else None,
            amount_off=terms.amount_off,
            currency=terms.currency,
            currency_options=dict(terms.currency_options),
            duration=terms.duration.value,
            duration_in_months=terms.duration_in_months,
            max_redemptions=max_redemptions,
            times_redeemed=0,
            redeem_by=redeem_by,
            applies_to_plans=plans,
            active=True,
            metadata_=metadata or {},
            created_at=now,
            updated_at=now,
        )
        self.repo.add(row)
        await self.repo.flush()
        await self._event("coupon.created", "coupon", row.id, {"duration": row.duration})
        return row

    async def _plan_keys(self, names: Sequence[str] | None) -> list[str] | None:
        """Plan ids or keys → the plans' keys (what a redemption is checked against), in given order."""
        if names is None:
            return None
        if not names:
            raise ValidationFailed(
                "applies_to.plans must name at least one plan (omit applies_to for every plan)",
                field="applies_to.plans",
            )
        found = await self.repo.plans_by_id_or_key(list(names))
        keys: list[str] = []
        for name in names:
            plan = found.get(name)
            if plan is None:
                raise ValidationFailed(f"applies_to.plans: unknown plan {name!r}", field="applies_to.plans")
            if plan.key not in keys:
                keys.append(plan.key)
        return keys

    async def get_coupon(self, coupon_id: str) -> Coupon:
        row = await self.repo.get_coupon(coupon_id)
        if row is None:
            raise CouponNotFound(f"no coupon {coupon_id!r}")
        return row

    async def list_coupons(self, *, after: str | None, limit: int, active: bool | None) -> Page[Coupon]:
        return Page.from_overfetch(
            await self.repo.list_coupons(after=after, limit=limit, active=active), limit
        )

    async def update_coupon(self, coupon_id: str, changes: dict[str, Any]) -> Coupon:
        """Only `name` and `metadata` change; money terms are immutable (create another coupon)."""
        row = await self.get_coupon(coupon_id)
        unknown = set(changes) - {"name", "metadata"}
        if unknown:
            raise ValidationFailed(
                "a coupon's terms are immutable; only name and metadata change "
                f"({', '.join(sorted(unknown))})",
                field=sorted(unknown)[0],
            )
        if "name" in changes:
            row.name = changes["name"]
        if "metadata" in changes:
            row.metadata_ = changes["metadata"]
        row.updated_at = self.clock.now()
        await self.repo.flush()
        await self._event("coupon.updated", "coupon", row.id, {"changed": sorted(changes)})
        return row

    async def delete_coupon(self, coupon_id: str) -> Coupon:
        """Deactivate: no new redemptions, but discounts already redeemed keep applying (Stripe's rule).
        Its promotion codes stop working with it. Deleting twice is a no-op."""
        row = await self.get_coupon(coupon_id)
        if row.active:
            row.active = False
            row.updated_at = self.clock.now()
            await self.repo.flush()
            await self._event("coupon.deleted", "coupon", row.id, {})
        return row

    # promotion codes ----------------------------------------------------------------------------
    async def create_promotion_code(
        self,
        *,
        coupon: str,
        code: str | None = None,
        active: bool = True,
        max_redemptions: int | None = None,
        expires_at: datetime | None = None,
        customer: str | None = None,
        first_time_transaction: bool = False,
        minimum_amount: int | None = None,
        minimum_amount_currency: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PromotionCode:
        """`code` is optional: without one, an 8-character code is generated."""
        now = self.clock.now()
        coupon_row = await self.get_coupon(coupon)
        if not coupon_row.active:
            raise CouponInactive(f"coupon {coupon_row.id} is no longer active", field="coupon")
        if max_redemptions is not None and (isinstance(max_redemptions, bool) or max_redemptions < 1):
            raise ValidationFailed("max_redemptions must be at least 1", field="max_redemptions")
        if expires_at is not None:
            expires_at = check_future(ensure_utc(expires_at), now, "expires_at")
        minimum, minimum_currency = parse_minimum_amount(minimum_amount, minimum_amount_currency)
        if customer is not None and not await self.repo.customer_exists(customer):
            raise CustomerNotFound(f"no customer {customer!r}", field="customer")
        if code is None:
            code = await self._fresh_code()
        else:
            code = normalize_code(code)
            if await self.repo.code_taken(code):
                raise PromotionCodeAlreadyExists(f"promotion code {code} exists already", field="code")
        row = PromotionCode(
            id=new_id("promo"),
            code=code,
            coupon_id=coupon_row.id,
            active=active,
            max_redemptions=max_redemptions,
            times_redeemed=0,
            expires_at=expires_at,
            customer_id=customer,
            first_time_transaction=first_time_transaction,
            minimum_amount=minimum,
            minimum_amount_currency=minimum_currency,
            metadata_=metadata or {},
            created_at=now,
            updated_at=now,
        )
        self.repo.add(row)
        await self.repo.flush()
        await self._event(
            "promotion_code.created", "promotion_code", row.id, {"code": code, "coupon": coupon_row.id}
        )
        return row

    async def _fresh_code(self) -> str:
        for _ in range(10):
            code = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
            if not await self.repo.code_taken(code):
                return code
        raise RuntimeError("could not generate an unused promotion code in 10 tries")  # 31^8 codes: a bug

    async def get_promotion_code(self, id_or_code: str, *, scope: str | None = None) -> PromotionCode:
        """By id or code (case-insensitive). With a tenant `scope`, a code reserved for another customer
        is indistinguishable from a missing one."""
        row = await self.repo.get_promotion_code(id_or_code)
        if row is None or (scope is not None and row.customer_id not in (None, scope)):
            raise PromotionCodeNotFound(f"no promotion code {id_or_code!r}")
        return row

    async def list_promotion_codes(
        self,
        *,
        after: str | None,
        limit: int,
        code: str | None = None,
        coupon: str | None = None,
        active: bool | None = None,
        customer: str | None = None,
        scope: str | None = None,
    ) -> Page[PromotionCode]:
        rows = await self.repo.list_promotion_codes(
            after=after,
            limit=limit,
            code=code.strip().upper() if code is not None else None,
            coupon_id=coupon,
            active=active,
            customer_id=customer,
            visible_to=scope,
        )
        return Page.from_overfetch(rows, limit)

    async def update_promotion_code(
        self, id_or_code: str, changes: dict[str, Any], *, scope: str | None = None
    ) -> PromotionCode:
        """Only `active` and `metadata` change. A code of a deleted coupon cannot be reactivated."""
        row = await self.get_promotion_code(id_or_code, scope=scope)
        unknown = set(changes) - {"active", "metadata"}
        if unknown:
            raise ValidationFailed(
                f"only active and metadata of a promotion code change ({', '.join(sorted(unknown))})",
                field=sorted(unknown)[0],
            )
        if changes.get("active") and not row.active:
            coupon = await self.get_coupon(row.coupon_id)
            if not coupon.active:
                raise CouponInactive(
                    f"coupon {coupon.id} is no longer active: its codes cannot be reactivated", field="active"
                )
        if "active" in changes:
            row.active = changes["active"]
        if "metadata" in changes:
            row.metadata_ = changes["metadata"]
        row.updated_at = self.clock.now()
        await self.repo.flush()
        await self._event("promotion_code.updated", "promotion_code", row.id, {"changed": sorted(changes)})
        return row

    async def coupons_of(self, rows: Sequence[PromotionCode]) -> dict[str, Coupon]:
        return await self.repo.coupons_by_id(sorted({r.coupon_id for r in rows}))

    # redemption ---------------------------------------------------------------------------------
    async def check(
        self,
        *,
        coupon: str | None,
        promotion_code: str | None,
        checkout: Checkout,
        scope: str | None = None,
    ) -> CheckResult:
        """Read-only: find the coupon (directly, or through a promotion code given by id or code) and say
        everything that would refuse it at `checkout`. Unknown ones raise 404s."""
        if (coupon is None) == (promotion_code is None):
            raise ValidationFailed("give exactly one of coupon and promotion_code", field="coupon")
        promo_row: PromotionCode | None = None
        if promotion_code is not None:
            promo_row = await self.get_promotion_code(promotion_code, scope=scope)
            coupon_row = await self.get_coupon(promo_row.coupon_id)
        else:
            assert coupon is not None
            coupon_row = await self.get_coupon(coupon)
        result = eligibility(
            coupon_state(coupon_row), promotion_state(promo_row) if promo_row else None, checkout
        )
        return CheckResult(coupon_row, promo_row, result)

    async def redeem(
        self,
        *,
        coupon: str | None,
        promotion_code: str | None,
        customer_id: str,
        plan_key: str,
        currency: str,
        first_time: bool,
        subtotal: int | None,
        at: datetime,
    ) -> Redemption:
        """Claim one redemption of a coupon (by id) or a promotion code (by "promo_…" id or by its code,
        case-insensitive) for `customer_id` subscribing to `plan_key` in `currency` at `at`.

        `first_time`: the customer has never been invoiced. `subtotal`: the first invoice's pre-discount,
        pre-tax subtotal in minor units (needed only for a code with a minimum amount; None refuses it).
        Raises `CouponNotFound` / `PromotionCodeNotFound` (404) or a `RedemptionRefused` (409) whose
        `code` names the first reason. Increments `times_redeemed` of the coupon and of the code with
        conditional UPDATEs, so concurrent redemptions never exceed a limit.
        """
        at = ensure_utc(at)
        checkout = Checkout(
            at=at,
            customer_id=customer_id,
            plan_key=plan_key,
            currency=currency.upper(),
            first_time=first_time,
            subtotal=subtotal,
        )
        found = await self.check(coupon=coupon, promotion_code=promotion_code, checkout=checkout)
        coupon_row, promo_row = found.coupon, found.promotion_code
        if found.eligibility.refusals:
            first = found.eligibility.refusals[0]
            raise REFUSALS[first.reason.value](first.detail)
        for unchecked in found.eligibility.unchecked:
            error, detail = _UNCHECKED_AT_REDEMPTION[unchecked]
            raise error(detail)

        if not await self.repo.claim_coupon(coupon_row.id):
            raise CouponExhausted(
                f"coupon {coupon_row.id} reached its {coupon_row.max_redemptions} redemptions"
            )
        if promo_row is not None and not await self.repo.claim_promotion_code(promo_row.id):
            # Give the coupon's redemption back so this call is all-or-nothing even for a caller that
            # catches the error and carries on in the same transaction.
            await self.repo.release_coupon(coupon_row.id)
            raise PromotionCodeExhausted(
                f"promotion code {promo_row.code} reached its {promo_row.max_redemptions} redemptions"
            )
        terms = coupon_terms(coupon_row)
        amount_off = terms.amount_off_in(currency.upper()) if terms.amount_off is not None else None
        redemption = Redemption(
            coupon_id=coupon_row.id,
            promotion_code_id=promo_row.id if promo_row else None,
            duration=terms.duration,
            duration_in_months=terms.duration_in_months,
            percent_off=terms.percent_off,
            amount_off=amount_off,
            currency=currency.upper() if amount_off is not None else None,
            customer_id=customer_id,
            redeemed_at=at,
        )
        await self._event(
            "coupon.redeemed",
            "coupon",
            coupon_row.id,
            {"customer": customer_id, "promotion_code": redemption.promotion_code_id, "plan": plan_key},
            tenant=customer_id,
        )
        return redemption

    async def release(self, redemption: Redemption) -> None:
        """Give a redemption back (both counters) when the caller will not use it after all.

        Not needed when the caller's transaction rolls back: the counters roll back with it.
        """
        await self.repo.release_coupon(redemption.coupon_id)
        if redemption.promotion_code_id is not None:
            await self.repo.release_promotion_code(redemption.promotion_code_id)
        await self._event(
            "coupon.redemption_released",
            "coupon",
            redemption.coupon_id,
            {"customer": redemption.customer_id, "promotion_code": redemption.promotion_code_id},
            tenant=redemption.customer_id,
        )


__all__ = ["CheckResult", "CouponService", "coupon_state", "coupon_terms", "promotion_state"]
