"""Catalog rules: feature kinds, plan grants, and price terms, validated without I/O.

Amount conventions: every amount in a price is in the currency's *minor units*. Per-unit amounts are
`Decimal` because usage is often priced below a cent ($0.0006 per call = Decimal("0.06") cents); flat
amounts are whole minor units. Rounding happens only when a line is rated (billing), never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from gateway.kernel.errors import ValidationFailed
from gateway.kernel.money import UnknownCurrency, normalize_currency
from gateway.kernel.periods import Alignment, Interval

# A limit of `None` means unlimited; the API spells it `null` (and accepts the string "unlimited").
UNLIMITED = None


class FeatureKind(StrEnum):
    BOOLEAN = "boolean"  # a module is on or off
    GAUGE = "gauge"  # a count that goes up and down: projects, seats, storage
    METERED = "metered"  # an allowance consumed per billing period: API calls


class PlanKind(StrEnum):
    BASE = "base"  # a tier: a subscription has exactly one
    ADDON = "addon"  # stacked on a base plan: extra seats, a module


class PricingModel(StrEnum):
    FLAT = "flat"  # one amount per period
    PER_SEAT = "per_seat"  # unit_amount × quantity
    GRADUATED = "graduated"  # each unit priced at its own tier (rule 5)
    VOLUME = "volume"  # all units priced at the tier the total falls in (rule 6)
    PACKAGE = "package"  # per pack of `package_size` units, rounded up or down (rule 8)
    USAGE = "usage"  # unit_amount × metered quantity of the period, billed in arrears


class UsageType(StrEnum):
    LICENSED = "licensed"  # quantity is set on the subscription (seats); billed in advance
    METERED = "metered"  # quantity is measured over the period; billed in arrears


class PackageRounding(StrEnum):
    UP = "up"
    DOWN = "down"


TIERED_MODELS = frozenset({PricingModel.GRADUATED, PricingModel.VOLUME})


@dataclass(frozen=True, slots=True)
class Tier:
    """`up_to` is an inclusive upper bound (rule 7); `None` only on the last tier."""

    up_to: int | None
    unit_amount: Decimal = Decimal(0)
    flat_amount: int = 0


@dataclass(frozen=True, slots=True)
class CurrencyAmounts:
    unit_amount: Decimal = Decimal(0)
    tiers: tuple[Tier, ...] = ()


@dataclass(frozen=True, slots=True)
class PriceTerms:
    model: PricingModel
    interval: Interval
    currency_options: Mapping[str, CurrencyAmounts]
    usage_type: UsageType = UsageType.LICENSED
    package_size: int | None = None
    package_rounding: PackageRounding = PackageRounding.UP
    metered_feature: str | None = None  # feature key whose usage is the quantity (metered prices)
    alignment: Alignment = Alignment.ANNIVERSARY

    def amounts(self, currency: str) -> CurrencyAmounts:
        try:
            return self.currency_options[currency]
        except KeyError:
            raise ValidationFailed(
                f"price has no amount in {currency}", code="currency_not_offered"
            ) from None

    def monthly_amount(self, currency: str, quantity: int = 1) -> Decimal:
        """Normalised monthly value of a licensed price at `quantity`, for upgrade/downgrade ordering
        and MRR. Tiered prices are evaluated at the quantity; metered prices count as zero."""
        if self.usage_type is UsageType.METERED:
            return Decimal(0)
        amounts = self.amounts(currency)
        if self.model is PricingModel.FLAT:
            total = amounts.unit_amount
        elif self.model in (PricingModel.PER_SEAT, PricingModel.USAGE):
            total = amounts.unit_amount * quantity
        elif self.model is PricingModel.PACKAGE:
            size = self.package_size or 1
            packs = -(-quantity // size) if self.package_rounding is PackageRounding.UP else quantity // size
            total = amounts.unit_amount * packs
        else:
            total = _tiered_estimate(self.model, amounts.tiers, quantity)
        return total / self.interval.months


def _tiered_estimate(model: PricingModel, tiers: tuple[Tier, ...], quantity: int) -> Decimal:
    total = Decimal(0)
    lower = 0
    for tier in tiers:
        upper = tier.up_to
        if model is PricingModel.VOLUME:
            if upper is None or quantity <= upper:
                return tier.unit_amount * quantity + tier.flat_amount
            continue
        if quantity > lower:
            units = (min(quantity, upper) if upper is not None else quantity) - lower
            total += tier.unit_amount * units + tier.flat_amount
        if upper is None or quantity <= upper:
            break
        lower = upper
    return total


# ---------------------------------------------------------------------------------------------
# Parsing and validation of the API's plain-data form
# ---------------------------------------------------------------------------------------------


def _decimal(value: Any, field_name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValidationFailed(f"{field_name} must be a number", field=field_name)
    if isinstance(value, float):
        # Floats cannot carry money exactly: ask for a string ("0.06") or an int instead.
        raise ValidationFailed(f"{field_name} must be an integer or a decimal string", field=field_name)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValidationFailed(f"{field_name} is not a decimal number", field=field_name) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationFailed(f"{field_name} must be a finite, non-negative amount", field=field_name)
    if amount.as_tuple().exponent < -12 or amount > Decimal(10) ** 15:  # type: ignore[operator]
        raise ValidationFailed(f"{field_name} is out of range", field=field_name)
    return amount


def _int(value: Any, field_name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 10**15:
        raise ValidationFailed(f"{field_name} must be an integer ≥ {minimum}", field=field_name)
    return value


def parse_tiers(raw: Any, field_name: str) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed(f"{field_name} must be a non-empty list of tiers", field=field_name)
    tiers: list[Tier] = []
    previous = 0
    for i, item in enumerate(raw):
        where = f"{field_name}[{i}]"
        if not isinstance(item, Mapping):
            raise ValidationFailed(f"{where} must be an object", field=where)
        up_to_raw = item.get("up_to")
        last = i == len(raw) - 1
        if up_to_raw in (None, "inf"):
            if not last:
                raise ValidationFailed(f"{where}: only the last tier may be unbounded", field=where)
            up_to = None
        else:
            up_to = _int(up_to_raw, f"{where}.up_to", minimum=1)
            if up_to <= previous:
                raise ValidationFailed(f"{where}.up_to must increase from tier to tier", field=where)
            previous = up_to
        tiers.append(
            Tier(
                up_to=up_to,
                unit_amount=_decimal(item.get("unit_amount", 0), f"{where}.unit_amount"),
                flat_amount=_int(item.get("flat_amount", 0), f"{where}.flat_amount"),
            )
        )
    if tiers[-1].up_to is not None:
        raise ValidationFailed(
            f"{field_name}: the last tier must be unbounded (up_to null)", field=field_name
        )
    return tuple(tiers)


def parse_price_terms(
    *,
    model: str,
    interval: str,
    currency_options: Any,
    usage_type: str | None = None,
    package_size: int | None = None,
    package_rounding: str | None = None,
    metered_feature: str | None = None,
    alignment: str | None = None,
) -> PriceTerms:
    """Validate a price as the API receives it; raises `ValidationFailed` (422) naming the field."""
    try:
        pricing_model = PricingModel(model)
    except ValueError:
        raise ValidationFailed(f"unknown pricing model {model!r}", field="model") from None
    try:
        period = Interval(interval)
    except ValueError:
        raise ValidationFailed(f"unknown interval {interval!r}", field="interval") from None
    try:
        align = Alignment(alignment or Alignment.ANNIVERSARY)
    except ValueError:
        raise ValidationFailed(f"unknown alignment {alignment!r}", field="alignment") from None
    default_usage = UsageType.METERED if pricing_model is PricingModel.USAGE else UsageType.LICENSED
    try:
        usage = UsageType(usage_type) if usage_type else default_usage
    except ValueError:
        raise ValidationFailed(f"unknown usage_type {usage_type!r}", field="usage_type") from None
    if pricing_model is PricingModel.USAGE and usage is not UsageType.METERED:
        raise ValidationFailed("usage prices are metered", field="usage_type")
    if pricing_model in (PricingModel.FLAT, PricingModel.PER_SEAT) and usage is UsageType.METERED:
        raise ValidationFailed(f"{pricing_model} prices are licensed, not metered", field="usage_type")
    if usage is UsageType.METERED and not metered_feature:
        raise ValidationFailed("a metered price names its metered_feature", field="metered_feature")

    if pricing_model is PricingModel.PACKAGE:
        if package_size is None:
            raise ValidationFailed("package prices need package_size", field="package_size")
        _int(package_size, "package_size", minimum=1)
    elif package_size is not None:
        raise ValidationFailed("package_size only applies to package prices", field="package_size")
    try:
        rounding = PackageRounding(package_rounding or PackageRounding.UP)
    except ValueError:
        raise ValidationFailed(
            f"unknown package_rounding {package_rounding!r}", field="package_rounding"
        ) from None

    if not isinstance(currency_options, Mapping) or not currency_options:
        raise ValidationFailed(
            "currency_options must map at least one ISO 4217 currency to its amounts",
            field="currency_options",
        )
    options: dict[str, CurrencyAmounts] = {}
    for code, raw in currency_options.items():
        try:
            currency = normalize_currency(str(code))
        except UnknownCurrency as exc:
            raise ValidationFailed(str(exc), field="currency_options") from None
        where = f"currency_options.{currency}"
        if currency in options:
            raise ValidationFailed(f"{where} is given twice", field=where)
        if not isinstance(raw, Mapping):
            raise ValidationFailed(f"{where} must be an object", field=where)
        if pricing_model in TIERED_MODELS:
            if "unit_amount" in raw:
                raise ValidationFailed(f"{where}: tiered prices take tiers, not unit_amount", field=where)
            options[currency] = CurrencyAmounts(tiers=parse_tiers(raw.get("tiers"), f"{where}.tiers"))
        else:
            if raw.get("tiers"):
                raise ValidationFailed(
                    f"{where}: tiers only apply to graduated or volume prices", field=where
                )
            if "unit_amount" not in raw:
                raise ValidationFailed(f"{where}.unit_amount is required", field=f"{where}.unit_amount")
            unit = _decimal(raw["unit_amount"], f"{where}.unit_amount")
            if pricing_model is PricingModel.FLAT and unit != unit.to_integral_value():
                raise ValidationFailed(
                    f"{where}.unit_amount of a flat price is whole minor units", field=where
                )
            options[currency] = CurrencyAmounts(unit_amount=unit)
    return PriceTerms(
        model=pricing_model,
        interval=period,
        currency_options=options,
        usage_type=usage,
        package_size=package_size,
        package_rounding=rounding,
        metered_feature=metered_feature,
        alignment=align,
    )


def terms_to_plain(terms: PriceTerms) -> dict[str, Any]:
    """The JSON form stored in the database and returned by the API (decimals as strings)."""
    options: dict[str, Any] = {}
    for currency, amounts in terms.currency_options.items():
        if terms.model in TIERED_MODELS:
            options[currency] = {
                "tiers": [
                    {"up_to": t.up_to, "unit_amount": str(t.unit_amount), "flat_amount": t.flat_amount}
                    for t in amounts.tiers
                ]
            }
        else:
            options[currency] = {"unit_amount": str(amounts.unit_amount)}
    return options


@dataclass(frozen=True, slots=True)
class Grant:
    """What a plan version gives for one feature. `limit` None = unlimited; booleans have no limit.

    `soft` limits admit overage (metered for billing); hard limits deny at the limit.
    """

    feature_key: str
    kind: FeatureKind
    limit: int | None = UNLIMITED
    soft: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)


def validate_grant(kind: FeatureKind, limit: Any, soft: bool) -> int | None:
    if kind is FeatureKind.BOOLEAN:
        if limit not in (None, "unlimited"):
            raise ValidationFailed("boolean features take no limit", field="limit")
        if soft:
            raise ValidationFailed("boolean features have no soft limit", field="soft")
        return None
    if limit is None or limit == "unlimited":
        return UNLIMITED
    return _int(limit, "limit", minimum=0)
