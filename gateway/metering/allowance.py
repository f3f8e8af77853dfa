"""The allowance of a metered feature over one billing period, as pure rules.

allowance = included units (the plan version's grant, add-ons stacked) + prepaid usage credits live
            at the period's close
used      = the meter's total over the period + units consumed through `/v1/check`
drawn     = from the included units first, then from credits (soonest expiry first), then overage

- Overage is never negative and never exceeds `used`; it only grows with `used` (the property tests
  in tests/metering/test_overage_property.py).
- A credit counts for a period when it is live at the period's close: effective before the period
  ends, expiring at or after the end. A credit that expires mid-period covers nothing of that period,
  so it can never cover usage that happened after it expired.
- Thresholds are percentages of the allowance; each is reached once per period (a unique row), never
  again for the same crossing. With no allowance at all (0 included, no credits), any usage reaches
  every threshold; an unlimited allowance has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

DEFAULT_THRESHOLDS: tuple[int, ...] = (80, 100)


@dataclass(frozen=True, slots=True)
class CreditLot:
    id: str
    remaining: int
    effective_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class UsageSplit:
    """How a period's usage is covered: `included` + `credited` + `overage` == `used`."""

    used: int
    included: int
    credited: int
    overage: int


def live_at_close(lots: Iterable[CreditLot], period_end: datetime) -> list[CreditLot]:
    """The credits that count for a period ending at `period_end`, in draw order (soonest expiry
    first, never-expiring last; then oldest first)."""
    live = [
        lot
        for lot in lots
        if lot.remaining > 0
        and lot.effective_at < period_end
        and (lot.expires_at is None or lot.expires_at >= period_end)
    ]
    far = datetime.max.replace(tzinfo=period_end.tzinfo)
    return sorted(live, key=lambda lot: (lot.expires_at or far, lot.effective_at, lot.id))


def split_usage(used: int, included: int | None, credit_available: int) -> UsageSplit:
    """Cover `used` units with the included units, then credits; the rest is overage. `included` None
    is unlimited: nothing is ever overage."""
    if used < 0 or credit_available < 0 or (included is not None and included < 0):
        raise ValueError("usage, included units and credits are never negative")
    if included is None:
        return UsageSplit(used, used, 0, 0)
    from_included = min(used, included)
    from_credits = min(used - from_included, credit_available)
    return UsageSplit(used, from_included, from_credits, used - from_included - from_credits)


def draw(lots: Sequence[CreditLot], units: int) -> list[tuple[str, int]]:
    """(credit id, units) drawn from `lots` (already in draw order) to cover `units`."""
    taken: list[tuple[str, int]] = []
    for lot in lots:
        if units <= 0:
            break
        take = min(lot.remaining, units)
        if take > 0:
            taken.append((lot.id, take))
            units -= take
    return taken


def allowance(included: int | None, credits: int) -> int | None:
    return None if included is None else included + credits


def reached_thresholds(used: int, total: int | None, thresholds: Sequence[int]) -> list[int]:
    """The thresholds (percent of `total`) that `used` has reached; exact integer comparison, so 8,000
    of 10,000 reaches 80 % and 7,999 does not."""
    if total is None or used <= 0:
        return []
    if total == 0:
        return sorted(thresholds)
    return sorted(t for t in thresholds if used * 100 >= t * total)


def allocate(groups: Mapping[str, int], free_units: int) -> dict[str, int]:
    """Spread `free_units` (included + credited) over the groups of a grouped usage price, in the
    groups' key order, and return what stays billable per group. Deterministic, so a rerun or a late
    recomputation bills the same groups; the billable units always sum to max(0, total − free)."""
    billable: dict[str, int] = {}
    for key in sorted(groups):
        covered = min(groups[key], free_units)
        free_units -= covered
        billable[key] = groups[key] - covered
    return billable
