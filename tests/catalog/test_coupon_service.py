"""CouponService against a real database: creation, redemption, refusals and the atomic counters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import (
    CouponDuration,
    CouponService,
    CouponTerms,
    Redemption,
    RedemptionRefused,
    coupon_terms,
)
from gateway.catalog.errors import CouponNotFound, PromotionCodeNotFound
from gateway.catalog.models import Coupon, PromotionCode
from gateway.catalog.repository import CatalogRepository
from gateway.customers.repository import CustomerRepository
from gateway.customers.service import CustomerService
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.kernel.clock import FrozenClock
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from tests.conftest import START


@pytest.fixture
async def catalog(db: Database, clock: FrozenClock) -> None:
    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)


@pytest.fixture
async def session(db: Database, catalog: None) -> AsyncIterator[AsyncSession]:
    async with db.unit_of_work() as session:
        yield session


def service(session: AsyncSession, clock: FrozenClock) -> CouponService:
    return CouponService(CatalogRepository(session), clock)


async def customer(session: AsyncSession, clock: FrozenClock, name: str = "Acme") -> str:
    return (await CustomerService(CustomerRepository(session), clock).create(name=name)).id


def redeem_args(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "coupon": None,
        "promotion_code": None,
        "customer_id": "cus_x",
        "plan_key": "pro",
        "currency": "USD",
        "first_time": True,
        "subtotal": 4900,
        "at": START,
    }
    return {**base, **kw}


async def test_redeem_a_percent_coupon_directly(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    row = await coupons.create_coupon(
        id="SUMMER20", name="Summer", percent_off="20", duration="repeating", duration_in_months=3
    )
    assert (row.id, row.percent_off, row.duration, row.times_redeemed, row.active) == (
        "SUMMER20",
        "20",
        "repeating",
        0,
        True,
    )

    redemption = await coupons.redeem(**redeem_args(coupon="SUMMER20", at=START + timedelta(hours=1)))

    assert redemption == Redemption(
        coupon_id="SUMMER20",
        promotion_code_id=None,
        duration=CouponDuration.REPEATING,
        duration_in_months=3,
        percent_off=Decimal("20"),
        amount_off=None,
        currency=None,
        customer_id="cus_x",
        redeemed_at=START + timedelta(hours=1),
    )
    assert row.times_redeemed == 1  # the loaded object follows the conditional UPDATE
    await session.flush()
    events = (await session.scalars(select(OutboxEvent.type).order_by(OutboxEvent.seq))).all()
    assert events[-2:] == ["coupon.created", "coupon.redeemed"]


async def test_generated_ids_and_codes(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    row = await coupons.create_coupon(amount_off=500, currency="usd", duration="forever")
    assert row.id.startswith("cpn_") and (row.amount_off, row.currency) == (500, "USD")
    code = await coupons.create_promotion_code(coupon=row.id)
    assert code.id.startswith("promo_") and len(code.code) == 8 and code.code == code.code.upper()


async def test_amount_off_resolves_the_checkout_currency(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    await coupons.create_coupon(
        id="TENOFF", amount_off=1000, currency="USD", currency_options={"EUR": 900}, duration="once"
    )
    eur = await coupons.redeem(**redeem_args(coupon="TENOFF", currency="eur"))
    assert (eur.amount_off, eur.currency, eur.percent_off) == (900, "EUR", None)
    usd = await coupons.redeem(**redeem_args(coupon="TENOFF"))
    assert (usd.amount_off, usd.currency) == (1000, "USD")
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(coupon="TENOFF", currency="GBP"))
    assert info.value.error_code == "coupon_currency_mismatch" and info.value.status == 409
    assert (await coupons.get_coupon("TENOFF")).times_redeemed == 2


async def test_redeem_through_a_promotion_code_counts_both(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    await coupons.create_coupon(id="HALF", percent_off=50, duration="once", max_redemptions=10)
    code = await coupons.create_promotion_code(coupon="HALF", code="half-off", max_redemptions=2)
    assert code.code == "HALF-OFF"

    by_code = await coupons.redeem(**redeem_args(promotion_code="Half-Off"))
    by_id = await coupons.redeem(**redeem_args(promotion_code=code.id))

    assert by_code.promotion_code_id == by_id.promotion_code_id == code.id
    assert by_code.coupon_id == "HALF"
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(promotion_code="HALF-OFF"))
    assert info.value.error_code == "promotion_code_exhausted"
    assert code.times_redeemed == 2
    assert (await coupons.get_coupon("HALF")).times_redeemed == 2


@pytest.mark.parametrize(
    ("coupon_kw", "code_kw", "redeem_kw", "expected"),
    [
        ({"max_redemptions": 1}, {}, {}, "coupon_exhausted"),  # after the first redemption
        ({"applies_to_plans": ["enterprise"]}, {}, {}, "coupon_not_applicable"),
        ({}, {"first_time_transaction": True}, {"first_time": False}, "not_first_time_customer"),
        ({}, {"minimum_amount": 5000, "minimum_amount_currency": "USD"}, {}, "minimum_amount_not_met"),
        (
            {},
            {"minimum_amount": 1000, "minimum_amount_currency": "USD"},
            {"subtotal": None},
            "minimum_amount_not_met",
        ),
        ({}, {"max_redemptions": 1}, {}, "promotion_code_exhausted"),
    ],
)
async def test_refusals_carry_stable_codes(
    session: AsyncSession,
    clock: FrozenClock,
    coupon_kw: dict[str, Any],
    code_kw: dict[str, Any],
    redeem_kw: dict[str, Any],
    expected: str,
) -> None:
    coupons = service(session, clock)
    await coupons.create_coupon(id="C", percent_off=10, duration="forever", **coupon_kw)
    await coupons.create_promotion_code(coupon="C", code="CODE", **code_kw)
    if expected.endswith("exhausted"):
        await coupons.redeem(**redeem_args(promotion_code="CODE"))
    before = (await coupons.get_coupon("C")).times_redeemed
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(promotion_code="CODE", **redeem_kw))
    assert info.value.error_code == expected
    assert (await coupons.get_coupon("C")).times_redeemed == before  # a refusal takes nothing


async def test_expiry_deactivation_and_customer_restriction(
    session: AsyncSession, clock: FrozenClock
) -> None:
    coupons = service(session, clock)
    mine = await customer(session, clock, "Mine")
    await coupons.create_coupon(id="SOON", percent_off=10, redeem_by=START + timedelta(days=1))
    await coupons.create_promotion_code(
        coupon="SOON", code="ONLY-MINE", customer=mine, expires_at=START + timedelta(hours=1)
    )
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(promotion_code="only-mine", customer_id="cus_other"))
    assert info.value.error_code == "promotion_code_not_for_customer"
    mine_ok = await coupons.redeem(**redeem_args(promotion_code="ONLY-MINE", customer_id=mine))
    assert mine_ok.customer_id == mine
    late = START + timedelta(hours=2)
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(promotion_code="ONLY-MINE", customer_id=mine, at=late))
    assert info.value.error_code == "promotion_code_expired"
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(coupon="SOON", at=START + timedelta(days=1)))
    assert info.value.error_code == "coupon_expired"

    await coupons.delete_coupon("SOON")
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(coupon="SOON"))
    assert info.value.error_code == "coupon_inactive"
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(promotion_code="ONLY-MINE", customer_id=mine))
    assert info.value.error_code == "coupon_inactive"  # the code's coupon is gone


async def test_unknown_and_ambiguous_references(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    with pytest.raises(CouponNotFound):
        await coupons.redeem(**redeem_args(coupon="NOPE"))
    with pytest.raises(PromotionCodeNotFound):
        await coupons.redeem(**redeem_args(promotion_code="NOPE"))
    with pytest.raises(ValidationFailed):
        await coupons.redeem(**redeem_args())
    with pytest.raises(ValidationFailed):
        await coupons.redeem(**redeem_args(coupon="A", promotion_code="B"))


async def test_release_gives_both_counters_back(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    await coupons.create_coupon(id="ONE", percent_off=10, max_redemptions=1)
    code = await coupons.create_promotion_code(coupon="ONE", code="ONE-CODE", max_redemptions=1)
    redemption = await coupons.redeem(**redeem_args(promotion_code="ONE-CODE"))
    await coupons.release(redemption)
    assert (await coupons.get_coupon("ONE")).times_redeemed == 0 and code.times_redeemed == 0
    again = await coupons.redeem(**redeem_args(promotion_code="ONE-CODE"))
    assert again.coupon_id == "ONE"


async def test_a_code_that_runs_out_gives_the_coupon_back(session: AsyncSession, clock: FrozenClock) -> None:
    """The promotion code's claim fails after the coupon's succeeded (a concurrent redeemer took the last
    use in between): the coupon's redemption is returned, so redeem is all-or-nothing."""
    coupons = service(session, clock)
    await coupons.create_coupon(id="PAIR", percent_off=10, max_redemptions=5)
    code = await coupons.create_promotion_code(coupon="PAIR", code="PAIR-CODE", max_redemptions=1)
    repo = coupons.repo
    assert await repo.claim_promotion_code(code.id)  # someone else's redemption, not yet visible as read
    code.times_redeemed = 0  # what a concurrent reader would have seen
    with pytest.raises(RedemptionRefused) as info:
        await coupons.redeem(**redeem_args(promotion_code="PAIR-CODE"))
    assert info.value.error_code == "promotion_code_exhausted"
    assert (await coupons.get_coupon("PAIR")).times_redeemed == 0


async def test_terms_are_immutable_and_delete_is_idempotent(
    session: AsyncSession, clock: FrozenClock
) -> None:
    coupons = service(session, clock)
    await coupons.create_coupon(id="KEEP", percent_off="12.5", metadata={"a": "1"})
    row = await coupons.update_coupon("KEEP", {"name": "Kept", "metadata": {"b": "2"}})
    assert (row.name, row.metadata_, row.percent_off) == ("Kept", {"b": "2"}, "12.5")
    with pytest.raises(ValidationFailed):
        await coupons.update_coupon("KEEP", {"percent_off": "50"})
    deleted = await coupons.delete_coupon("KEEP")
    again = await coupons.delete_coupon("KEEP")
    assert deleted.active is False and again.active is False
    assert not coupons.valid(deleted)
    await session.flush()
    kinds = (await session.scalars(select(OutboxEvent.type).where(OutboxEvent.aggregate_id == "KEEP"))).all()
    assert list(kinds) == ["coupon.created", "coupon.updated", "coupon.deleted"]


async def test_creation_refusals(session: AsyncSession, clock: FrozenClock) -> None:
    coupons = service(session, clock)
    await coupons.create_coupon(id="DUP", percent_off=10)
    with pytest.raises(Conflict) as dup:
        await coupons.create_coupon(id="DUP", percent_off=10)
    assert dup.value.error_code == "coupon_already_exists"
    with pytest.raises(ValidationFailed) as past:
        await coupons.create_coupon(percent_off=10, redeem_by=START)
    assert past.value.extra["field"] == "redeem_by"
    with pytest.raises(ValidationFailed) as plan:
        await coupons.create_coupon(percent_off=10, applies_to_plans=["platinum"])
    assert plan.value.extra["field"] == "applies_to.plans"
    by_id = await coupons.create_coupon(percent_off=10, applies_to_plans=["pro", "pro", "basic"])
    assert by_id.applies_to_plans == ["pro", "basic"]
    await coupons.create_promotion_code(coupon="DUP", code="TAKEN")
    with pytest.raises(Conflict) as taken:
        await coupons.create_promotion_code(coupon="DUP", code="taken")
    assert taken.value.error_code == "promotion_code_already_exists"
    with pytest.raises(NotFound) as nobody:
        await coupons.create_promotion_code(coupon="DUP", customer="cus_nobody")
    assert nobody.value.error_code == "customer_not_found"
    await coupons.delete_coupon("DUP")
    with pytest.raises(RedemptionRefused) as inactive:
        await coupons.create_promotion_code(coupon="DUP")
    assert inactive.value.error_code == "coupon_inactive"
    await coupons.update_promotion_code("TAKEN", {"active": False})
    with pytest.raises(RedemptionRefused) as revive:
        await coupons.update_promotion_code("taken", {"active": True})
    assert revive.value.error_code == "coupon_inactive"


async def test_twenty_concurrent_redemptions_at_a_limit_of_three_get_exactly_three(
    db: Database, catalog: None, clock: FrozenClock
) -> None:
    async with db.unit_of_work() as session:
        await service(session, clock).create_coupon(id="RUSH", percent_off=10, max_redemptions=3)

    async def attempt(i: int) -> str:
        try:
            async with db.unit_of_work() as session:
                await service(session, clock).redeem(**redeem_args(coupon="RUSH", customer_id=f"cus_{i}"))
        except RedemptionRefused as exc:
            return exc.error_code
        return "redeemed"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))

    assert outcomes.count("redeemed") == 3
    assert outcomes.count("coupon_exhausted") == 17
    async with db.unit_of_work() as session:
        assert (await session.get(Coupon, "RUSH")).times_redeemed == 3  # type: ignore[union-attr]
        redeemed = await session.scalars(select(OutboxEvent).where(OutboxEvent.type == "coupon.redeemed"))
        assert len(redeemed.all()) == 3


async def test_concurrent_redemptions_of_a_code_respect_its_own_limit(
    db: Database, catalog: None, clock: FrozenClock
) -> None:
    async with db.unit_of_work() as session:
        coupons = service(session, clock)
        await coupons.create_coupon(id="WIDE", percent_off=10, max_redemptions=100)
        await coupons.create_promotion_code(coupon="WIDE", code="NARROW", max_redemptions=2)

    async def attempt(i: int) -> str:
        try:
            async with db.unit_of_work() as session:
                await service(session, clock).redeem(
                    **redeem_args(promotion_code="narrow", customer_id=f"c{i}")
                )
        except RedemptionRefused as exc:
            return exc.error_code
        return "redeemed"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(12)))

    assert outcomes.count("redeemed") == 2
    assert set(outcomes) == {"redeemed", "promotion_code_exhausted"}
    async with db.unit_of_work() as session:
        code = (await session.scalars(select(PromotionCode).where(PromotionCode.code == "NARROW"))).one()
        assert code.times_redeemed == 2
        # Every coupon claim that lost the code's race was given back.
        assert (await session.get(Coupon, "WIDE")).times_redeemed == 2  # type: ignore[union-attr]


async def test_a_rolled_back_unit_of_work_returns_the_redemption(
    db: Database, catalog: None, clock: FrozenClock
) -> None:
    async with db.unit_of_work() as session:
        await service(session, clock).create_coupon(id="UNDO", percent_off=10, max_redemptions=1)
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            await service(session, clock).redeem(**redeem_args(coupon="UNDO"))
            raise RuntimeError("the invoice was refused later in the same request")
    async with db.unit_of_work() as session:
        assert (await session.get(Coupon, "UNDO")).times_redeemed == 0  # type: ignore[union-attr]
        await service(session, clock).redeem(**redeem_args(coupon="UNDO"))


async def test_a_redemption_builds_billings_coupon_rule_18(session: AsyncSession, clock: FrozenClock) -> None:
    """The contract with billing: 20% off for 3 months on a $50 plan is $40, $40, $40, then $50."""
    from gateway.billing.discounts import Coupon as BillingCoupon
    from gateway.billing.discounts import CouponDuration as BillingDuration
    from gateway.billing.discounts import applies_to_period, apply_discount
    from gateway.kernel.money import Money
    from gateway.kernel.periods import add_months

    coupons = service(session, clock)
    await coupons.create_coupon(id="TWENTY3", percent_off=20, duration="repeating", duration_in_months=3)
    r = await coupons.redeem(**redeem_args(coupon="TWENTY3"))
    assert coupon_terms(await coupons.get_coupon("TWENTY3")) == CouponTerms(
        duration=CouponDuration.REPEATING, percent_off=Decimal(20), duration_in_months=3
    )
    billing_coupon = BillingCoupon(
        id=r.coupon_id,
        duration=BillingDuration(r.duration.value),
        percent_off=r.percent_off,
        amount_off=Money(r.amount_off, r.currency) if r.amount_off is not None and r.currency else None,
        duration_in_months=r.duration_in_months,
    )
    totals = []
    for month in range(5):
        start = add_months(r.redeemed_at, month)
        line = Money(5000, "USD")
        if applies_to_period(billing_coupon, r.redeemed_at, start):
            line = apply_discount(billing_coupon, [line])[0].net
        totals.append(line.amount)
    assert totals == [4000, 4000, 4000, 5000, 5000]
