"""SaaS metrics as ChartMogul defines them (billing-rules.md rules 32-37). Pure: amounts in, numbers out.

MRR is per customer, in integer minor units of one currency (no exchange rates here: each currency is
reported on its own).

Windows are half-open, `[start, end)`, everywhere (movements, trials, churn, cohorts): a calendar month
owns its first instant, as monthly reports are read. A change at exactly `start` is in the window; a change
at exactly `end` belongs to the next one. "MRR at the start" is the MRR just before `start` (what the
window inherits), "MRR at the end" the MRR just before `end` (what it hands on).

Net movements (`movements`, ChartMogul's "net MRR movements") compare every customer's MRR at the window's
start with its MRR at its end:

| start | end      | movement                                                        |
|-------|----------|-----------------------------------------------------------------|
| 0     | > 0      | new, or reactivation if the customer had MRR before the window  |
| > 0   | more     | expansion                                                       |
| > 0   | less > 0 | contraction                                                     |
| > 0   | 0        | churn                                                           |

so net new MRR = new + expansion + reactivation - contraction - churn = MRR(end) - MRR(start), exactly.
An upgrade and a downgrade back within the window, or a churn and a return, show nothing there. The
movement sequence (`movement_sequence`, ChartMogul's "MRR movements") classifies every change instead,
by the same table, from the customer's MRR just before it to just after it; its net new MRR telescopes to
the same MRR(end) - MRR(start).
Rates are Decimals (0.2 = 20 %); a rate over an empty base is None ("undefined"), never 0 or an error.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

_ONE = Decimal(1)


class Movement(StrEnum):
    NEW = "new"
    EXPANSION = "expansion"
    CONTRACTION = "contraction"
    CHURN = "churn"
    REACTIVATION = "reactivation"


def classify(start: int, end: int, *, had_mrr_before: bool) -> Movement | None:
    """The movement of one customer over a window (None: unchanged, or zero throughout)."""
    if start == end:
        return None
    if start == 0:
        return Movement.REACTIVATION if had_mrr_before else Movement.NEW
    if end == 0:
        return Movement.CHURN
    return Movement.EXPANSION if end > start else Movement.CONTRACTION


class MovementView(StrEnum):
    NET = "net"  # one movement per customer: its MRR at the window's start against its MRR at the end
    EACH = "each"  # every change in the window, in time order


@dataclass(frozen=True, slots=True)
class Movements:
    """Amounts are positive minor units (churn 1000 = 10.00 lost); `counts` are movements and
    `customers` the distinct customers with one (equal for net movements: one per customer at most)."""

    amounts: Mapping[Movement, int]
    counts: Mapping[Movement, int]
    customers: Mapping[Movement, int] = field(default_factory=dict)

    def amount(self, movement: Movement) -> int:
        return self.amounts.get(movement, 0)

    @property
    def net_new(self) -> int:
        return (
            self.amount(Movement.NEW)
            + self.amount(Movement.EXPANSION)
            + self.amount(Movement.REACTIVATION)
            - self.amount(Movement.CONTRACTION)
            - self.amount(Movement.CHURN)
        )


def movements(
    start: Mapping[str, int], end: Mapping[str, int], had_mrr_before: frozenset[str] = frozenset()
) -> Movements:
    """Rule 33 over a window: `start`/`end` map customer → MRR (missing = 0); `had_mrr_before` holds
    the customers with MRR at some time before the window (for reactivation)."""
    amounts: dict[Movement, int] = {}
    counts: dict[Movement, int] = {}
    for customer in start.keys() | end.keys():
        a, b = start.get(customer, 0), end.get(customer, 0)
        kind = classify(a, b, had_mrr_before=customer in had_mrr_before)
        if kind is None:
            continue
        amounts[kind] = amounts.get(kind, 0) + abs(b - a)
        counts[kind] = counts.get(kind, 0) + 1
    return Movements(amounts, counts, dict(counts))


def movement_sequence(
    start: Mapping[str, int], steps: Iterable[tuple[str, int]], had_mrr_before: frozenset[str] = frozenset()
) -> Movements:
    """Every change in a window: `start` maps customer → MRR just before the window, `steps` are
    (customer, its MRR after the change) in time order (one step per customer and instant)."""
    current = dict(start)
    had = set(had_mrr_before) | {c for c, mrr in start.items() if mrr > 0}
    amounts: dict[Movement, int] = {}
    counts: dict[Movement, int] = {}
    who: dict[Movement, set[str]] = {}
    for customer, after in steps:
        before = current.get(customer, 0)
        kind = classify(before, after, had_mrr_before=customer in had)
        current[customer] = after
        if after > 0:
            had.add(customer)
        if kind is None:
            continue
        amounts[kind] = amounts.get(kind, 0) + abs(after - before)
        counts[kind] = counts.get(kind, 0) + 1
        who.setdefault(kind, set()).add(customer)
    return Movements(amounts, counts, {kind: len(customers) for kind, customers in who.items()})


def ratio(numerator: int | Decimal, denominator: int | Decimal) -> Decimal | None:
    return None if denominator == 0 else Decimal(numerator) / Decimal(denominator)


@dataclass(frozen=True, slots=True)
class Churn:
    gross_revenue: Decimal | None
    net_revenue: Decimal | None
    customer: Decimal | None


def churn(start_mrr: int, moved: Movements, customers_at_start: int, customers_lost: int) -> Churn:
    """Rule 34: revenue churn gross = (churn + contraction) / MRR at start, net subtracts expansion and
    reactivation (negative net churn = the base grows on its own); customer churn = lost / at start."""
    lost = moved.amount(Movement.CHURN) + moved.amount(Movement.CONTRACTION)
    regained = moved.amount(Movement.EXPANSION) + moved.amount(Movement.REACTIVATION)
    return Churn(
        gross_revenue=ratio(lost, start_mrr),
        net_revenue=ratio(lost - regained, start_mrr),
        customer=ratio(customers_lost, customers_at_start),
    )


@dataclass(frozen=True, slots=True)
class Retention:
    net: Decimal | None  # NRR
    gross: Decimal | None  # GRR: never above 1


def retention(cohort_start: Mapping[str, int], cohort_end: Mapping[str, int]) -> Retention:
    """Rule 35 over the customers with MRR at the window's start only (new customers are excluded):
    NRR = (start - churn - contraction + expansion) / start, GRR the same without expansion."""
    start = sum(cohort_start.values())
    moved = movements(cohort_start, {c: cohort_end.get(c, 0) for c in cohort_start})
    kept = start - moved.amount(Movement.CHURN) - moved.amount(Movement.CONTRACTION)
    return Retention(net=ratio(kept + moved.amount(Movement.EXPANSION), start), gross=ratio(kept, start))


def arpa(mrr: int, customers: int) -> Decimal | None:
    """Average revenue per account: MRR / paying customers, in minor units."""
    return ratio(mrr, customers)


def ltv(arpa_value: Decimal | None, customer_churn: Decimal | None) -> Decimal | None:
    """Rule 36: ARPA / customer churn rate; undefined (None) when nobody churned or nobody pays."""
    if arpa_value is None or not customer_churn:
        return None
    return arpa_value / customer_churn


def trial_conversion(converted: int, ended: int) -> Decimal | None:
    """Rule 37: trials that became paid / trials that ended, in the window."""
    return ratio(converted, ended)


def normalised_monthly(amount: Decimal, months: int) -> Decimal:
    """Rule 32: a price's value per month (yearly ÷ 12, quarterly ÷ 3)."""
    return amount / Decimal(months)


def to_minor(value: Decimal) -> int:
    """Half-up to whole minor units, once, per subscription."""
    return int(value.quantize(_ONE, rounding=ROUND_HALF_UP))


def rate_text(value: Decimal | None, places: int = 4) -> str | None:
    """A rate as a decimal string with `places` decimals (0.2 → "0.2000"), for JSON without floats."""
    if value is None:
        return None
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


@dataclass(slots=True)
class PlanFlow:
    """Subscriptions that moved from one plan to another: how many moves, how many of them raised or
    lowered the MRR, and the MRR they added (negative when they lowered it)."""

    source: str
    target: str
    moves: int = 0
    upgrades: int = 0
    downgrades: int = 0
    mrr: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "from": self.source,
            "to": self.target,
            "moves": self.moves,
            "upgrades": self.upgrades,
            "downgrades": self.downgrades,
            "mrr": self.mrr,
        }


def plan_flows(
    changes: Iterable[tuple[datetime, str, str | None, str | None, int]],
    start: datetime,
    *,
    plan: str | None = None,
    interval: str | None = None,
) -> list[PlanFlow]:
    """Moves between plans from `start` on (the dashboard's upgrade patterns). `changes`: (at, subscription,
    plan and interval after the change, MRR after it), in time order, with each subscription's history from
    before `start` where it has one. A move is two consecutive changes of one subscription on different
    plans, paying on both sides (a trial that converts, or a cancel and a new signup, is not a move).
    `plan`, `interval`: only moves with that plan, that interval, on one side or the other."""
    last: dict[str, tuple[str | None, str | None, int]] = {}
    flows: dict[tuple[str, str], PlanFlow] = {}
    for at, subscription, to_plan, to_interval, value in changes:
        before = last.get(subscription)
        last[subscription] = (to_plan, to_interval, value)
        if at < start or before is None:
            continue
        from_plan, from_interval, old_value = before
        if from_plan is None or to_plan is None or from_plan == to_plan or old_value <= 0 or value <= 0:
            continue
        if plan not in (None, from_plan, to_plan) or interval not in (None, from_interval, to_interval):
            continue
        flow = flows.setdefault((from_plan, to_plan), PlanFlow(from_plan, to_plan))
        flow.moves += 1
        flow.mrr += value - old_value
        flow.upgrades += value > old_value
        flow.downgrades += value < old_value
    return sorted(flows.values(), key=lambda f: (-f.moves, f.source, f.target))


# Report windows: half-open `[start, end)`, in time order, not overlapping (a dashboard's months).
Windows = Sequence[tuple[datetime, datetime]]


def window_of(windows: Windows, at: datetime) -> int | None:
    """Which of the windows holds `at` (its index); None: none does."""
    i = bisect.bisect_right([start for start, _ in windows], at) - 1
    return i if i >= 0 and at < windows[i][1] else None
