"""Pure coupon and promotion-code rules (billing-rules.md rules 18-19): term validation and eligibility."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.catalog.domain import (
    Checkout,
    CouponDuration,
    CouponState,
    CouponTerms,
    PromotionState,
    RefusalReason,
    Unchecked,
    check_coupon_id,
    coupon_valid,
    eligibility,
    format_percent,
    normalize_code,
    parse_coupon_terms,
    parse_minimum_amount,
    parse_percent_off,
)
from gateway.catalog.errors import REFUSALS
from gateway.kernel.errors import ValidationFailed

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
PERCENT = CouponTerms(duration=CouponDuration.ONCE, percent_off=Decimal(20))
AMOUNT = CouponTerms(
    duration=CouponDuration.FOREVER, amount_off=500, currency="USD", currency_options={"EUR": 450}
)


def coupon(**kw: object) -> CouponState:
    return replace(CouponState(id="SUMMER20", terms=PERCENT), **kw)  # type: ignore[arg-type]


def promo(**kw: object) -> PromotionState:
    return replace(PromotionState(id="promo_1", code="SUMMER", coupon_id="SUMMER20"), **kw)  # type: ignore[arg-type]


def checkout(**kw: object) -> Checkout:
    base = Checkout(
        at=NOW, customer_id="cus_1", plan_key="pro", currency="USD", first_time=True, subtotal=5000
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def reasons(c: CouponState, p: PromotionState | None = None, **kw: object) -> list[str]:
    return [r.reason.value for r in eligibility(c, p, checkout(**kw)).refusals]


# -- term validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(20, "20"), ("12.5", "12.5"), ("12.50", "12.5"), ("100", "100"), ("0.01", "0.01"), ("33.33", "33.33")],
)
def test_percent_off_accepts_up_to_100_with_two_decimals(value: object, expected: str) -> None:
    assert format_percent(parse_percent_off(value)) == expected


@pytest.mark.parametrize("value", [0, "0", "0.00", "100.01", 101, "12.345", -5, 12.5, True, "abc", None])
def test_percent_off_refuses_out_of_range_floats_and_extra_decimals(value: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_percent_off(value)
    assert info.value.extra["field"] == "percent_off"


@given(st.decimals(min_value=Decimal("-1000"), max_value=Decimal("1000"), places=3, allow_nan=False))
def test_percent_off_is_accepted_exactly_in_0_to_100_with_at_most_two_places(value: Decimal) -> None:
    valid = Decimal(0) < value <= Decimal(100) and value == value.quantize(Decimal("0.01"))
    try:
        parsed = parse_percent_off(str(value))
    except ValidationFailed:
        assert not valid
    else:
        assert valid and parsed == value
        assert Decimal(format_percent(parsed)) == value  # the stored string is exact


def test_amount_off_terms_with_currency_options() -> None:
    terms = parse_coupon_terms(
        duration="repeating",
        duration_in_months=3,
        amount_off=500,
        currency="usd",
        currency_options={"eur": 450, "JPY": 700},
    )
    assert terms == CouponTerms(
        duration=CouponDuration.REPEATING,
        amount_off=500,
        currency="USD",
        currency_options={"EUR": 450, "JPY": 700},
        duration_in_months=3,
    )
    assert (terms.amount_off_in("USD"), terms.amount_off_in("EUR"), terms.amount_off_in("GBP")) == (
        500,
        450,
        None,
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration": "once"}, "percent_off"),  # neither kind
        ({"duration": "once", "percent_off": 10, "amount_off": 5, "currency": "USD"}, "percent_off"),  # both
        ({"duration": "once", "percent_off": 10, "currency": "USD"}, "currency"),
        ({"duration": "once", "amount_off": 500}, "currency"),
        ({"duration": "once", "amount_off": 0, "currency": "USD"}, "amount_off"),
        ({"duration": "once", "amount_off": 500, "currency": "XXX"}, "currency"),
        (
            {"duration": "once", "amount_off": 500, "currency": "USD", "currency_options": {"usd": 400}},
            "currency_options.USD.amount_off",
        ),
        ({"duration": "repeating", "percent_off": 10}, "duration_in_months"),
        ({"duration": "repeating", "duration_in_months": 0, "percent_off": 10}, "duration_in_months"),
        ({"duration": "forever", "duration_in_months": 3, "percent_off": 10}, "duration_in_months"),
        ({"duration": "weekly", "percent_off": 10}, "duration"),
    ],
)
def test_malformed_coupon_terms_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_coupon_terms(**kwargs)  # type: ignore[arg-type]
    assert info.value.extra["field"] == field


def test_coupon_ids_and_codes() -> None:
    assert check_coupon_id("SUMMER20") == "SUMMER20"
    for bad in ("", "has space", "-x", "cpn_mine", "x" * 41):
        with pytest.raises(ValidationFailed):
            check_coupon_id(bad)
    assert normalize_code(" summer-20 ") == "SUMMER-20"
    for bad in ("ab", "no spaces", "é-code", "_X1", "x" * 41):
        with pytest.raises(ValidationFailed):
            normalize_code(bad)
    assert parse_minimum_amount(1000, "usd") == (1000, "USD")
    assert parse_minimum_amount(None, None) == (None, None)
    with pytest.raises(ValidationFailed):
        parse_minimum_amount(1000, None)


@given(st.text(alphabet="abcXYZ019_-", min_size=3, max_size=40).filter(lambda s: s[0] not in "_-"))
def test_code_normalisation_is_idempotent_and_case_insensitive(code: str) -> None:
    assert normalize_code(code) == normalize_code(code.upper()) == normalize_code(code.lower())
    assert normalize_code(normalize_code(code)) == normalize_code(code)


# -- eligibility --------------------------------------------------------------------------------------


def test_an_unrestricted_coupon_applies() -> None:
    result = eligibility(coupon(), None, checkout())
    assert result.applies and result.refusals == () and result.unchecked == ()


def test_each_refusal_reason() -> None:
    assert reasons(coupon(active=False)) == ["coupon_inactive"]
    assert reasons(coupon(redeem_by=NOW)) == ["coupon_expired"]  # redeemable while at < redeem_by
    assert reasons(coupon(redeem_by=NOW + timedelta(seconds=1))) == []
    assert reasons(coupon(max_redemptions=3, times_redeemed=3)) == ["coupon_exhausted"]
    assert reasons(coupon(max_redemptions=3, times_redeemed=2)) == []
    assert reasons(coupon(plans=frozenset({"enterprise"}))) == ["coupon_not_applicable"]
    assert reasons(coupon(plans=frozenset({"pro", "enterprise"}))) == []
    assert reasons(coupon(terms=AMOUNT), currency="GBP") == ["coupon_currency_mismatch"]
    assert reasons(coupon(terms=AMOUNT), currency="EUR") == []
    c = coupon()
    assert reasons(c, promo(active=False)) == ["promotion_code_inactive"]
    assert reasons(c, promo(expires_at=NOW - timedelta(days=1))) == ["promotion_code_expired"]
    assert reasons(c, promo(max_redemptions=1, times_redeemed=1)) == ["promotion_code_exhausted"]
    assert reasons(c, promo(customer_id="cus_2")) == ["promotion_code_not_for_customer"]
    assert reasons(c, promo(customer_id="cus_1")) == []
    assert reasons(c, promo(first_time_transaction=True), first_time=False) == ["not_first_time_customer"]
    assert reasons(c, promo(first_time_transaction=True), first_time=True) == []
    minimum = promo(minimum_amount=5000, minimum_amount_currency="USD")
    assert reasons(c, minimum, subtotal=4999) == ["minimum_amount_not_met"]
    assert reasons(c, minimum, subtotal=5000) == []
    assert reasons(c, minimum, subtotal=9000, currency="EUR") == ["minimum_amount_not_met"]


def test_every_reason_is_reported_in_a_fixed_order() -> None:
    everything_wrong = coupon(
        terms=AMOUNT,
        active=False,
        redeem_by=NOW,
        max_redemptions=1,
        times_redeemed=1,
        plans=frozenset({"basic"}),
    )
    code = promo(
        active=False,
        expires_at=NOW,
        max_redemptions=2,
        times_redeemed=2,
        customer_id="cus_2",
        first_time_transaction=True,
        minimum_amount=100,
        minimum_amount_currency="GBP",
    )
    assert reasons(everything_wrong, code, currency="GBP", first_time=False, subtotal=50) == [
        r.value for r in RefusalReason
    ]


def test_missing_checkout_inputs_are_unchecked_not_guessed() -> None:
    c = coupon(terms=AMOUNT, plans=frozenset({"pro"}))
    code = promo(
        customer_id="cus_1", first_time_transaction=True, minimum_amount=100, minimum_amount_currency="USD"
    )
    result = eligibility(c, code, Checkout(at=NOW))
    assert result.refusals == ()
    assert result.unchecked == (
        Unchecked.CUSTOMER,
        Unchecked.FIRST_TIME_TRANSACTION,
        Unchecked.MINIMUM_AMOUNT,
        Unchecked.PLAN,
        Unchecked.CURRENCY,
    )
    assert not result.applies


def test_a_promotion_code_of_another_coupon_is_a_bug() -> None:
    with pytest.raises(ValueError, match="another coupon"):
        eligibility(coupon(), promo(coupon_id="OTHER"), checkout())


def test_every_reason_has_an_error_class_with_its_code() -> None:
    assert set(REFUSALS) == {r.value for r in RefusalReason}
    for code, cls in REFUSALS.items():
        assert cls.code == code and cls.status == 409


# -- properties -------------------------------------------------------------------------------------

times = st.integers(min_value=-10_000, max_value=10_000).map(lambda s: NOW + timedelta(seconds=s))
limits = st.none() | st.integers(min_value=1, max_value=20)
plan_sets = st.none() | st.frozensets(st.sampled_from(["basic", "pro", "enterprise"]), min_size=1)
coupons = st.builds(
    CouponState,
    id=st.just("SUMMER20"),
    terms=st.sampled_from([PERCENT, AMOUNT]),
    active=st.booleans(),
    redeem_by=st.none() | times,
    max_redemptions=limits,
    times_redeemed=st.integers(min_value=0, max_value=20),
    plans=plan_sets,
)
promos = st.none() | st.builds(
    PromotionState,
    id=st.just("promo_1"),
    code=st.just("SUMMER"),
    coupon_id=st.just("SUMMER20"),
    active=st.booleans(),
    expires_at=st.none() | times,
    max_redemptions=limits,
    times_redeemed=st.integers(min_value=0, max_value=20),
    customer_id=st.sampled_from([None, "cus_1", "cus_2"]),
    first_time_transaction=st.booleans(),
    minimum_amount=st.none() | st.integers(min_value=1, max_value=10_000),
).map(lambda p: replace(p, minimum_amount_currency="USD" if p.minimum_amount else None))
checkouts = st.builds(
    Checkout,
    at=times,
    customer_id=st.sampled_from(["cus_1", "cus_2"]),
    plan_key=st.sampled_from(["basic", "pro", "enterprise"]),
    currency=st.sampled_from(["USD", "EUR", "GBP"]),
    first_time=st.booleans(),
    subtotal=st.integers(min_value=0, max_value=10_000),
)


@given(coupons, promos, checkouts)
def test_complete_checkouts_are_decided_never_unchecked(
    c: CouponState, p: PromotionState | None, k: Checkout
) -> None:
    result = eligibility(c, p, k)
    assert result.unchecked == ()
    assert result.applies == (not result.refusals)
    assert len({r.reason for r in result.refusals}) == len(result.refusals)


@given(coupons, promos, checkouts, st.integers(min_value=0, max_value=10_000))
def test_time_only_closes_a_coupon(c: CouponState, p: PromotionState | None, k: Checkout, later: int) -> None:
    """What is refused for expiry stays refused later; what applies later applied earlier too."""
    now = eligibility(c, p, k)
    after = eligibility(c, p, replace(k, at=k.at + timedelta(seconds=later)))
    assert {r.reason for r in now.refusals} <= {r.reason for r in after.refusals}


@given(coupons, promos, checkouts, st.integers(min_value=0, max_value=10_000))
def test_a_bigger_subtotal_never_loses_the_discount(
    c: CouponState, p: PromotionState | None, k: Checkout, more: int
) -> None:
    small = eligibility(c, p, k)
    big = eligibility(c, p, replace(k, subtotal=(k.subtotal or 0) + more))
    assert {r.reason for r in big.refusals} <= {r.reason for r in small.refusals}


@given(coupons, checkouts)
def test_redemptions_run_out_exactly_at_the_limit(c: CouponState, k: Checkout) -> None:
    exhausted = RefusalReason.COUPON_EXHAUSTED in {r.reason for r in eligibility(c, None, k).refusals}
    assert exhausted == (c.max_redemptions is not None and c.times_redeemed >= c.max_redemptions)


@given(coupons, checkouts)
def test_valid_means_no_refusal_of_the_coupon_itself(c: CouponState, k: Checkout) -> None:
    own = {RefusalReason.COUPON_INACTIVE, RefusalReason.COUPON_EXPIRED, RefusalReason.COUPON_EXHAUSTED}
    refused = {r.reason for r in eligibility(c, None, k).refusals}
    assert coupon_valid(c, k.at) == (not refused & own)


@given(coupons, promos, checkouts)
def test_a_promotion_code_only_adds_restrictions(
    c: CouponState, p: PromotionState | None, k: Checkout
) -> None:
    direct = {r.reason for r in eligibility(c, None, k).refusals}
    through_code = {r.reason for r in eligibility(c, p, k).refusals}
    assert direct <= through_code
