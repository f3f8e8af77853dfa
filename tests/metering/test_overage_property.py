"""Property tests of overage rating: never negative, monotonic in usage (for every model whose price
only grows with quantity: per unit, package, graduated), equal to an independent reference computation,
and the same whether a meter is billed whole or split into groups."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.metered import rate_overage
from gateway.catalog.domain import parse_price_terms
from gateway.metering.allowance import allocate, split_usage

usage = st.integers(min_value=0, max_value=2_000_000)
included = st.one_of(st.none(), st.integers(min_value=0, max_value=1_000_000))
credits = st.integers(min_value=0, max_value=500_000)
unit = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(500), places=3)


@st.composite
def tiers(draw: Any) -> list[dict[str, Any]]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=1_000_000), min_size=0, max_size=3)))
    amounts = draw(st.lists(unit, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    flats = draw(
        st.lists(
            st.integers(min_value=0, max_value=5_000), min_size=len(bounds) + 1, max_size=len(bounds) + 1
        )
    )
    ups: list[int | None] = [*bounds, None]
    return [
        {"up_to": up, "unit_amount": str(a), "flat_amount": f}
        for up, a, f in zip(ups, amounts, flats, strict=True)
    ]


def _terms(model: str, option: dict[str, Any], **extra: Any) -> Any:
    return parse_price_terms(
        model=model,
        interval="month",
        currency_options={"USD": option},
        usage_type="metered",
        metered_feature="api_calls",
        **extra,
    )


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def reference_overage(used: int, inc: int | None, cred: int) -> int:
    if inc is None:
        return 0
    return max(0, used - inc - cred)


def reference_graduated(table: list[dict[str, Any]], quantity: int) -> int:
    total, lower = Decimal(0), 0
    for tier in table:
        if quantity <= lower:
            break
        upper = quantity if tier["up_to"] is None else min(quantity, tier["up_to"])
        total += Decimal(tier["unit_amount"]) * (upper - lower) + tier["flat_amount"]
        if tier["up_to"] is None:
            break
        lower = tier["up_to"]
    return _round(total)


@given(usage, included, credits, unit)
def test_per_unit_overage_is_the_reference_never_negative_and_monotonic(
    used: int, inc: int | None, cred: int, price: Decimal
) -> None:
    terms = _terms("usage", {"unit_amount": str(price)})
    split, rated = rate_overage(terms, "USD", used, inc, cred)
    over = reference_overage(used, inc, cred)
    assert split.overage == over and split.included + split.credited + split.overage == used
    assert rated.money.amount == _round(price * over) >= 0
    _, more = rate_overage(terms, "USD", used + 1, inc, cred)
    assert more.money.amount >= rated.money.amount


@given(usage, included, credits, tiers())
def test_graduated_overage_is_the_reference_never_negative_and_monotonic(
    used: int, inc: int | None, cred: int, table: list[dict[str, Any]]
) -> None:
    terms = _terms("graduated", {"tiers": table})
    split, rated = rate_overage(terms, "USD", used, inc, cred)
    assert rated.money.amount == reference_graduated(table, split.overage) >= 0
    _, more = rate_overage(terms, "USD", used + 1, inc, cred)
    assert more.money.amount >= rated.money.amount


@given(usage, included, credits, unit, st.integers(min_value=1, max_value=100_000))
def test_package_overage_bills_whole_packs_rounded_up(
    used: int, inc: int | None, cred: int, price: Decimal, size: int
) -> None:
    terms = _terms("package", {"unit_amount": str(price)}, package_size=size)
    split, rated = rate_overage(terms, "USD", used, inc, cred)
    packs = -(-split.overage // size)
    assert rated.money.amount == _round(price * packs) >= 0
    _, more = rate_overage(terms, "USD", used + 1, inc, cred)
    assert more.money.amount >= rated.money.amount


@given(usage, included, credits, tiers())
def test_volume_overage_prices_every_unit_at_the_tier_the_overage_reaches(
    used: int, inc: int | None, cred: int, table: list[dict[str, Any]]
) -> None:
    # Volume pricing is not monotonic by design (crossing into a cheaper tier lowers the total), so
    # only the reference and the sign are properties here.
    terms = _terms("volume", {"tiers": table})
    split, rated = rate_overage(terms, "USD", used, inc, cred)
    q = split.overage
    if q == 0:
        assert rated.money.amount == 0
        return
    tier = next(t for t in table if t["up_to"] is None or q <= t["up_to"])
    assert rated.money.amount == _round(Decimal(tier["unit_amount"]) * q + tier["flat_amount"]) >= 0


@given(
    st.dictionaries(st.text(max_size=3), st.integers(min_value=0, max_value=100_000), max_size=6),
    included,
    credits,
)
def test_groups_bill_exactly_the_overage_of_the_whole_meter(
    groups: dict[str, int], inc: int | None, cred: int
) -> None:
    used = sum(groups.values())
    split = split_usage(used, inc, cred)
    billable = allocate(groups, split.included + split.credited)
    assert sum(billable.values()) == split.overage
    assert all(0 <= billable[k] <= groups[k] for k in groups)


def test_the_story_number_2345_calls_at_0_2_cents_is_4_69() -> None:
    terms = _terms("usage", {"unit_amount": "0.2"})
    split, rated = rate_overage(terms, "USD", 12_345, 10_000, 0)
    assert (split.overage, rated.money.amount) == (2_345, 469)
