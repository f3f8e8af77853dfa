"""Credit application (billing-rules.md rule 24). Amounts in USD cents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.billing.credits import CreditGrant, apply_credits, consumption_order
from gateway.kernel.money import CurrencyMismatch, Money

AT = datetime(2025, 6, 1, tzinfo=UTC)


def usd(cents: int) -> Money:
    return Money(cents, "USD")


def grant(gid: str, cents: int, priority: int = 0, expires_in_days: int | None = None) -> CreditGrant:
    expires = None if expires_in_days is None else AT + timedelta(days=expires_in_days)
    return CreditGrant(id=gid, remaining=usd(cents), priority=priority, expires_at=expires)


def test_100_dollar_invoice_with_40_of_credit_charges_60() -> None:
    result = apply_credits(usd(10_000), [grant("g1", 4_000)], AT)

    assert result.charged == usd(6_000)
    assert result.consumed == (("g1", usd(4_000)),)
    assert result.credited == usd(4_000)


def test_credit_larger_than_the_invoice_leaves_the_rest_on_the_grant() -> None:
    result = apply_credits(usd(3_000), [grant("g1", 4_000)], AT)

    assert result.charged == usd(0)
    assert result.consumed == (("g1", usd(3_000)),)


def test_lowest_priority_number_first_then_earliest_expiry_then_no_expiry() -> None:
    grants = [
        grant("no-expiry", 100, priority=1),
        grant("late", 100, priority=1, expires_in_days=30),
        grant("soon", 100, priority=1, expires_in_days=2),
        grant("urgent-but-low-priority", 100, priority=2, expires_in_days=1),
        grant("priority-0", 100, priority=0),
    ]

    result = apply_credits(usd(450), grants, AT)

    assert [gid for gid, _ in result.consumed] == [
        "priority-0",
        "soon",
        "late",
        "no-expiry",
        "urgent-but-low-priority",
    ]
    assert result.consumed[-1][1] == usd(50)
    assert result.charged == usd(0)


def test_expired_grants_are_skipped_and_expiry_is_exclusive() -> None:
    grants = [grant("expired", 1_000, expires_in_days=-1), grant("expires-now", 1_000, expires_in_days=0)]

    result = apply_credits(usd(500), grants, AT)

    assert result.consumed == ()
    assert result.charged == usd(500)
    assert consumption_order(grants, AT - timedelta(seconds=1)) == [grants[1]]


def test_negative_total_is_refused_so_the_caller_records_a_balance() -> None:
    with pytest.raises(ValueError):
        apply_credits(usd(-100), [grant("g1", 1_000)], AT)


def test_grant_in_another_currency_is_refused() -> None:
    other = CreditGrant(id="eur", remaining=Money(1_000, "EUR"))

    with pytest.raises(CurrencyMismatch):
        apply_credits(usd(500), [other], AT)


def test_negative_grant_is_refused() -> None:
    with pytest.raises(ValueError):
        grant("bad", -1)


grant_lists = st.lists(
    st.builds(
        grant,
        gid=st.uuids().map(str),
        cents=st.integers(0, 10**6),
        priority=st.integers(0, 3),
        expires_in_days=st.one_of(st.none(), st.integers(-5, 5)),
    ),
    max_size=6,
)


@given(st.integers(0, 5 * 10**6), grant_lists)
def test_credits_never_charge_below_zero_and_account_for_every_cent(
    total: int, grants: list[CreditGrant]
) -> None:
    result = apply_credits(usd(total), grants, AT)

    assert result.charged.amount >= 0
    assert result.charged + result.credited == usd(total)
    by_id = {g.id: g for g in grants}
    for gid, taken in result.consumed:
        assert 0 < taken.amount <= by_id[gid].remaining.amount
        assert by_id[gid].usable_at(AT)
    usable = sum(g.remaining.amount for g in grants if g.usable_at(AT))
    assert result.credited.amount == min(total, usable)
