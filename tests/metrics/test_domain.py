"""Rules 32-37 with their worked numbers, and the identities every window must satisfy."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.metrics import domain
from gateway.metrics.domain import (
    Movement,
    arpa,
    churn,
    classify,
    ltv,
    movements,
    normalised_monthly,
    rate_text,
    retention,
    to_minor,
    trial_conversion,
)


def test_rule_32_mrr_five_at_5_and_two_at_30_is_85() -> None:
    mrr = {f"c{i}": 500 for i in range(5)} | {"d1": 3000, "d2": 3000}
    assert sum(mrr.values()) == 8500


def test_rule_32_yearly_and_quarterly_normalise_to_a_month() -> None:
    assert to_minor(normalised_monthly(Decimal(96000), 12)) == 8000
    assert to_minor(normalised_monthly(Decimal(9000), 3)) == 3000
    assert to_minor(normalised_monthly(Decimal(10000), 12)) == 833  # 83.33…, half-up once


def test_rule_33_each_customer_moves_once_and_net_new_adds_up() -> None:
    start = {"new_is_absent": 0, "grows": 1000, "shrinks": 3000, "leaves": 2000, "same": 500}
    end = {"new_is_absent": 700, "grows": 1500, "shrinks": 1000, "leaves": 0, "same": 500, "back": 900}
    moved = movements(start, end, had_mrr_before=frozenset({"back"}))
    assert moved.amounts == {
        Movement.NEW: 700,
        Movement.EXPANSION: 500,
        Movement.CONTRACTION: 2000,
        Movement.CHURN: 2000,
        Movement.REACTIVATION: 900,
    }
    assert all(n == 1 for n in moved.counts.values())
    assert moved.net_new == 700 + 500 + 900 - 2000 - 2000 == sum(end.values()) - sum(start.values())


def test_rule_34_revenue_churn_20_percent_gross_10_net() -> None:
    # $100 at start over four customers: one churns $10, one contracts $10, one expands $10.
    start = {"a": 1000, "b": 2000, "c": 3000, "d": 4000}
    end = {"a": 0, "b": 1000, "c": 4000, "d": 4000}
    moved = movements(start, end)
    rates = churn(10000, moved, customers_at_start=4, customers_lost=1)
    assert (rates.gross_revenue, rates.net_revenue) == (Decimal("0.2"), Decimal("0.1"))


def test_rule_34_customer_churn_500_to_450_is_10_percent() -> None:
    rates = churn(0, movements({}, {}), customers_at_start=500, customers_lost=50)
    assert rates.customer == Decimal("0.1") and rates.gross_revenue is None


def test_rule_35_nrr_105_grr_95() -> None:
    # 200k start: 6k churn, 4k contraction, 20k expansion (amounts in dollars, as minor units ×100).
    start = {"churns": 600_000, "contracts": 1_000_000, "expands": 1_000_000, "rest": 17_400_000}
    end = {"churns": 0, "contracts": 600_000, "expands": 3_000_000, "rest": 17_400_000}
    kept = retention(start, end)
    assert (kept.net, kept.gross) == (Decimal("1.05"), Decimal("0.95"))
    # A customer who was not in the cohort at the start does not count.
    assert retention(start, end | {"newcomer": 5_000_000}) == kept


def test_rule_36_ltv_is_arpa_over_customer_churn_and_undefined_without_churn() -> None:
    assert ltv(arpa(10_000_000, 1000), Decimal("0.05")) == Decimal(2000_00)  # $100 / 5 % = $2,000
    assert ltv(arpa(100_000, 1000), Decimal(0)) is None
    assert ltv(arpa(0, 0), Decimal("0.05")) is None


def test_rule_37_trial_conversion() -> None:
    assert trial_conversion(3, 4) == Decimal("0.75")
    assert trial_conversion(0, 0) is None
    assert rate_text(Decimal("0.75")) == "0.7500" and rate_text(None) is None


def test_classify_leaves_unchanged_customers_out() -> None:
    assert classify(500, 500, had_mrr_before=True) is None
    assert classify(0, 0, had_mrr_before=True) is None


mrr_maps = st.dictionaries(st.sampled_from("abcdefghij"), st.integers(0, 10**9), max_size=10)


@given(mrr_maps, mrr_maps, st.frozensets(st.sampled_from("abcdefghij")))
def test_net_new_is_always_end_minus_start(
    start: dict[str, int], end: dict[str, int], before: frozenset[str]
) -> None:
    moved = movements(start, end, before)
    assert moved.net_new == sum(end.values()) - sum(start.values())
    assert all(amount > 0 for amount in moved.amounts.values())
    assert sum(moved.counts.values()) == sum(
        1 for c in start.keys() | end.keys() if start.get(c, 0) != end.get(c, 0)
    )


@given(mrr_maps, mrr_maps)
def test_grr_never_exceeds_one_or_nrr_and_gross_churn_bounds_net(
    start: dict[str, int], end: dict[str, int]
) -> None:
    kept = retention(start, end)
    if kept.gross is None:
        assert sum(start.values()) == 0
        return
    assert kept.net is not None
    assert 0 <= kept.gross <= 1 and kept.net >= kept.gross
    rates = churn(sum(start.values()), movements(start, end), len(start), 0)
    assert rates.gross_revenue is not None and rates.net_revenue is not None
    assert rates.net_revenue <= rates.gross_revenue


@settings(max_examples=200, deadline=None)
@given(
    start=st.dictionaries(st.sampled_from("abcd"), st.integers(0, 5000), max_size=4),
    steps=st.lists(st.tuples(st.sampled_from("abcd"), st.integers(0, 5000)), max_size=12),
)
def test_the_movement_sequence_telescopes_to_the_net_change(
    start: dict[str, int], steps: list[tuple[str, int]]
) -> None:
    """Each change classified on its own still adds up to MRR(end) - MRR(start); the net view's movements
    are never larger in total than the sequence's (a swing back and forth nets to nothing)."""
    end = dict(start)
    for customer, after in steps:
        end[customer] = after
    each = domain.movement_sequence(start, steps)
    net = domain.movements(start, end)
    assert each.net_new == net.net_new == sum(end.values()) - sum(start.values())
    assert sum(each.amounts.values()) >= sum(net.amounts.values())
    assert all(each.customers.get(k, 0) <= each.counts.get(k, 0) for k in domain.Movement)


def test_an_upgrade_and_a_downgrade_back_show_only_in_the_sequence() -> None:
    steps = [("a", 2900), ("a", 900)]
    each = domain.movement_sequence({"a": 900}, steps)
    assert (each.amount(domain.Movement.EXPANSION), each.amount(domain.Movement.CONTRACTION)) == (2000, 2000)
    assert domain.movements({"a": 900}, {"a": 900}).amounts == {}
