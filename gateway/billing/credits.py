"""Applying credit grants to an invoice total before the card is charged (billing-rules.md rule 24).

Grants are consumed lowest `priority` number first, then earliest expiry, grants without expiry last: the
credit that would be lost soonest is used first. Unused credit stays on the grants; it is never refunded
automatically (rule 12).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.kernel.clock import ensure_utc
from gateway.kernel.money import CurrencyMismatch, Money


@dataclass(frozen=True, slots=True)
class CreditGrant:
    """`remaining` is what is left to consume; a grant is expired from `expires_at` on (half-open)."""

    id: str
    remaining: Money
    priority: int = 0
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.remaining.amount < 0:
            raise ValueError(f"grant {self.id} has a negative remaining balance")
        if self.expires_at is not None:
            object.__setattr__(self, "expires_at", ensure_utc(self.expires_at))

    def usable_at(self, at: datetime) -> bool:
        return self.expires_at is None or ensure_utc(at) < self.expires_at


@dataclass(frozen=True, slots=True)
class CreditApplication:
    """`charged` + the consumed amounts == the invoice total, always."""

    charged: Money
    consumed: tuple[tuple[str, Money], ...]

    @property
    def credited(self) -> Money:
        return sum((amount for _, amount in self.consumed), Money.zero(self.charged.currency))


def consumption_order(grants: Sequence[CreditGrant], at: datetime) -> list[CreditGrant]:
    """The usable grants at `at`, in the order they are consumed (ties keep the given order)."""
    at = ensure_utc(at)
    usable = [g for g in grants if g.usable_at(at) and not g.remaining.is_zero()]
    return sorted(usable, key=lambda g: (g.priority, g.expires_at is None, g.expires_at or at))


def apply_credits(total: Money, grants: Sequence[CreditGrant], at: datetime) -> CreditApplication:
    """Consume grants against an invoice `total` finalised at `at`; the rest is charged.

    A negative total is refused rather than treated as zero: it is a credit owed to the customer and
    belongs on their balance, which the caller must record, not silently drop.
    """
    if total.amount < 0:
        raise ValueError("a negative invoice total goes to the customer balance; there is nothing to pay")
    for grant in grants:
        if grant.remaining.currency != total.currency:
            # Rule 23 fixes a customer's currency, so a grant in another one is corrupt data, not a case
            # to convert: converting would need a rate and a rounding nobody agreed to.
            raise CurrencyMismatch(f"grant {grant.id} is in {grant.remaining.currency}, not {total.currency}")

    due = total.amount
    consumed: list[tuple[str, Money]] = []
    for grant in consumption_order(grants, at):
        if due == 0:
            break
        take = min(due, grant.remaining.amount)
        consumed.append((grant.id, Money(take, total.currency)))
        due -= take
    return CreditApplication(Money(due, total.currency), tuple(consumed))
