"""Rating: the amount a price charges for a quantity in one period (billing-rules.md rules 5-9).

The exact subtotal is kept as `Decimal` minor units because per-unit prices go below a cent; the line is
rounded once, at the end, never per tier or per unit. Rounding per tier and summing is exactly the
off-by-a-cent class of bug rule 20 warns about.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import assert_never

from gateway.catalog.domain import PackageRounding, PriceTerms, PricingModel, Tier
from gateway.kernel.money import Money, normalize_currency


@dataclass(frozen=True, slots=True)
class TierUsage:
    """The units of one tier that a rating used, for invoice line descriptions.

    `index` is the position in the price's tier list (0-based); `first_unit`/`last_unit` are the
    inclusive unit numbers billed at this tier (for volume pricing, 1…quantity).
    """

    index: int
    first_unit: int
    last_unit: int
    unit_amount: Decimal
    flat_amount: int

    @property
    def units(self) -> int:
        return self.last_unit - self.first_unit + 1

    @property
    def subtotal(self) -> Decimal:
        return self.unit_amount * self.units + self.flat_amount


@dataclass(frozen=True, slots=True)
class RatedAmount:
    """`subtotal` is exact (minor units, may hold fractions of a cent); `money` is it rounded once.

    `packages` is set for package prices only: the number of packs billed after rounding.
    """

    model: PricingModel
    quantity: int
    subtotal: Decimal
    money: Money
    tiers: tuple[TierUsage, ...] = ()
    packages: int | None = None


def rate(terms: PriceTerms, currency: str, quantity: int) -> RatedAmount:
    """What `terms` charge for `quantity` units in `currency` over one period."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"quantity must be an int, got {type(quantity).__name__}")
    if quantity < 0:
        raise ValueError(f"quantity must be non-negative, got {quantity}")
    currency = normalize_currency(currency)
    amounts = terms.amounts(currency)
    model = terms.model

    tiers: tuple[TierUsage, ...] = ()
    packages: int | None = None
    if model is PricingModel.FLAT:
        # A flat price is the price of the period; the subscription quantity does not multiply it.
        subtotal = amounts.unit_amount
    elif model in (PricingModel.PER_SEAT, PricingModel.USAGE):
        subtotal = amounts.unit_amount * quantity
    elif model is PricingModel.PACKAGE:
        packages = _packages(quantity, terms.package_size, terms.package_rounding)
        subtotal = amounts.unit_amount * packages
    elif model is PricingModel.GRADUATED:
        tiers = _graduated(amounts.tiers, quantity)
        subtotal = sum((t.subtotal for t in tiers), Decimal(0))
    elif model is PricingModel.VOLUME:
        tiers = _volume(amounts.tiers, quantity)
        subtotal = sum((t.subtotal for t in tiers), Decimal(0))
    else:  # pragma: no cover - PricingModel is closed; mypy flags a new member that is not rated here
        assert_never(model)

    return RatedAmount(
        model=model,
        quantity=quantity,
        subtotal=subtotal,
        money=Money.from_minor_decimal(subtotal, currency),
        tiers=tiers,
        packages=packages,
    )


def _packages(quantity: int, size: int | None, rounding: PackageRounding) -> int:
    if size is None or size < 1:
        # The catalog refuses package prices without a size; reaching here means the terms were built
        # by hand, and guessing a size of 1 would silently bill per unit.
        raise ValueError("package prices need a package_size of at least 1")
    if rounding is PackageRounding.UP:
        return -(-quantity // size)
    return quantity // size


def _graduated(tiers: tuple[Tier, ...], quantity: int) -> tuple[TierUsage, ...]:
    """Each unit at its own tier (rule 5); a tier's flat fee is due once any unit reaches the tier.

    Zero units reach no tier, so a graduated price bills nothing at quantity 0 even with flat fees.
    """
    used: list[TierUsage] = []
    lower = 0  # units covered by the tiers before this one; tier bounds are inclusive (rule 7)
    for index, tier in enumerate(tiers):
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        used.append(TierUsage(index, lower + 1, upper, tier.unit_amount, tier.flat_amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    else:
        if quantity > lower:
            # Validated tiers end unbounded; a bounded last tier would leave units unpriced (free).
            raise ValueError(f"quantity {quantity} exceeds the last tier's bound {lower}")
    return tuple(used)


def _volume(tiers: tuple[Tier, ...], quantity: int) -> tuple[TierUsage, ...]:
    """All units at the tier the total falls in, plus that tier's flat fee (rule 6).

    Zero units fall in no tier: a volume price with a flat fee bills nothing for a period without usage,
    matching the graduated rule above.
    """
    if quantity == 0:
        return ()
    for index, tier in enumerate(tiers):
        if tier.up_to is None or quantity <= tier.up_to:
            return (TierUsage(index, 1, quantity, tier.unit_amount, tier.flat_amount),)
    raise ValueError(f"quantity {quantity} exceeds the last tier's bound {tiers[-1].up_to if tiers else 0}")
