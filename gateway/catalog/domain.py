"""Catalog rules: feature kinds, plan grants, price terms, coupon terms and redemption eligibility,
validated without I/O.

Amount conventions: every amount in a price is in the currency's *minor units*. Per-unit amounts are
`Decimal` because usage is often priced below a cent ($0.0006 per call = Decimal("0.06") cents); flat
amounts are whole minor units. Rounding happens only when a line is rated (billing), never here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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


DEFAULT_ALERT_THRESHOLDS = (80, 100)
_GROUP_PROPERTY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")


def validate_alert_thresholds(thresholds: Sequence[int] | None) -> list[int] | None:
    """Percentages of a period's allowance at which `usage.threshold_reached` fires: distinct, 1-1000
    (above 100 % alerts on soft-limit overage), kept sorted. None = the setting's default (80, 100)."""
    if thresholds is None:
        return None
    values = [_int(t, "alert_thresholds", minimum=1) for t in thresholds]
    if not values or len(values) > 10 or any(v > 1000 for v in values):
        raise ValidationFailed(
            "alert_thresholds are 1-10 percentages from 1 to 1000", field="alert_thresholds"
        )
    if len(set(values)) != len(values):
        raise ValidationFailed("alert_thresholds must be distinct", field="alert_thresholds")
    return sorted(values)


def validate_price_meter(
    usage: UsageType, meter: str | None, group_by: Sequence[str] | None
) -> tuple[str | None, list[str] | None]:
    """A meter belongs to metered prices only; grouping needs a meter and names distinct properties."""
    if meter is not None and usage is not UsageType.METERED:
        raise ValidationFailed("only metered prices read a meter", field="meter")
    if group_by is None:
        return meter, None
    if meter is None:
        raise ValidationFailed("usage_group_by needs a meter", field="usage_group_by")
    groups = list(group_by)
    if (
        not groups
        or len(groups) > 5
        or not all(isinstance(g, str) and _GROUP_PROPERTY.match(g) for g in groups)
    ):
        raise ValidationFailed("usage_group_by is 1-5 event property names", field="usage_group_by")
    if len(set(groups)) != len(groups):
        raise ValidationFailed("usage_group_by properties must be distinct", field="usage_group_by")
    return meter, groups


# ---------------------------------------------------------------------------------------------
# Coupons and promotion codes (billing-rules.md rules 18-19)
# ---------------------------------------------------------------------------------------------
#
# A coupon holds the money terms (percent or amount off, duration) and coupon-wide limits; a promotion
# code is a customer-facing string for one coupon with its own limits and restrictions. Everything here
# is pure: the service reads rows, calls `eligibility`, and then claims the counters with a conditional
# UPDATE, which is the authority under concurrency (the read counts here only refuse early).

_HUNDRED = Decimal(100)
_PERCENT_QUANTUM = Decimal("0.01")
MAX_AMOUNT = 10**15
MAX_DURATION_MONTHS = 1200
COUPON_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
# Customer-facing codes: letters, digits, '-' and '_', compared case-insensitively (stored upper case).
PROMOTION_CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9_\-]{2,39}$")
GENERATED_COUPON_PREFIX = "cpn"


class CouponDuration(StrEnum):
    ONCE = "once"
    REPEATING = "repeating"  # for `duration_in_months`
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """The money terms of a coupon. Immutable once the coupon exists (like Stripe).

    Exactly one of `percent_off` (0 < p ≤ 100, at most 2 decimals) or `amount_off` (minor units of
    `currency`, > 0). `currency_options` adds amounts in other currencies (`{"EUR": 900}`), never the
    primary `currency` again.
    """

    duration: CouponDuration
    percent_off: Decimal | None = None
    amount_off: int | None = None
    currency: str | None = None
    currency_options: Mapping[str, int] = field(default_factory=dict)
    duration_in_months: int | None = None

    def amount_off_in(self, currency: str) -> int | None:
        """The amount off in `currency`, or None when the coupon has no amount in it."""
        if self.amount_off is None:
            return None
        if currency == self.currency:
            return self.amount_off
        return self.currency_options.get(currency)

    @property
    def currencies(self) -> frozenset[str]:
        if self.currency is None:
            return frozenset()
        return frozenset({self.currency, *self.currency_options})


def parse_percent_off(value: Any, field_name: str = "percent_off") -> Decimal:
    """0 < p ≤ 100 with at most two decimals, from an int or a decimal string (floats are refused)."""
    percent = _decimal(value, field_name)
    if not Decimal(0) < percent <= _HUNDRED:
        raise ValidationFailed(f"{field_name} must be greater than 0 and at most 100", field=field_name)
    if percent != percent.quantize(_PERCENT_QUANTUM):
        raise ValidationFailed(f"{field_name} takes at most two decimals", field=field_name)
    return percent


def format_percent(percent: Decimal) -> str:
    """Canonical string of a percentage: "20", "12.5", "0.01" (no exponent, no trailing zeros)."""
    return format(percent.normalize(), "f")


def _currency(code: Any, field_name: str) -> str:
    try:
        return normalize_currency(str(code))
    except UnknownCurrency as exc:
        raise ValidationFailed(str(exc), field=field_name) from None


def _amount_off(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_AMOUNT:
        raise ValidationFailed(f"{field_name} must be a positive integer of minor units", field=field_name)
    return value


def parse_coupon_terms(
    *,
    duration: str,
    duration_in_months: Any = None,
    percent_off: Any = None,
    amount_off: Any = None,
    currency: str | None = None,
    currency_options: Mapping[str, Any] | None = None,
) -> CouponTerms:
    """Validate a coupon's money terms as the API receives them; `ValidationFailed` (422) names the field."""
    try:
        coupon_duration = CouponDuration(duration)
    except ValueError:
        raise ValidationFailed(f"unknown duration {duration!r}", field="duration") from None
    months: int | None = None
    if coupon_duration is CouponDuration.REPEATING:
        if (
            isinstance(duration_in_months, bool)
            or not isinstance(duration_in_months, int)
            or not 1 <= duration_in_months <= MAX_DURATION_MONTHS
        ):
            raise ValidationFailed(
                f"a repeating coupon needs duration_in_months between 1 and {MAX_DURATION_MONTHS}",
                field="duration_in_months",
            )
        months = duration_in_months
    elif duration_in_months is not None:
        raise ValidationFailed(
            f"duration_in_months only applies to repeating coupons, not {coupon_duration}",
            field="duration_in_months",
        )

    if (percent_off is None) == (amount_off is None):
        raise ValidationFailed(
            "a coupon takes exactly one of percent_off and amount_off", field="percent_off"
        )
    if percent_off is not None:
        if currency is not None or currency_options:
            raise ValidationFailed("a percent_off coupon takes no currency", field="currency")
        return CouponTerms(
            duration=coupon_duration, percent_off=parse_percent_off(percent_off), duration_in_months=months
        )

    amount = _amount_off(amount_off, "amount_off")
    if currency is None:
        raise ValidationFailed("an amount_off coupon needs its currency", field="currency")
    primary = _currency(currency, "currency")
    options: dict[str, int] = {}
    for code, value in (currency_options or {}).items():
        other = _currency(code, "currency_options")
        where = f"currency_options.{other}.amount_off"
        if other == primary or other in options:
            raise ValidationFailed(f"currency_options repeats {other}", field=where)
        options[other] = _amount_off(value, where)
    return CouponTerms(
        duration=coupon_duration,
        amount_off=amount,
        currency=primary,
        currency_options=options,
        duration_in_months=months,
    )


def check_coupon_id(value: str) -> str:
    """A caller-chosen coupon id ("SUMMER20"): case-sensitive, 1-40 of A-Z a-z 0-9 '_' '-'.

    Generated ids are "cpn_…"; that prefix is kept for them so an id never looks generated when it isn't.
    """
    if not COUPON_ID_PATTERN.match(value):
        raise ValidationFailed(
            "id must be 1-40 characters of A-Z, a-z, 0-9, '_', '-', starting with a letter or digit",
            field="id",
        )
    if value.startswith(f"{GENERATED_COUPON_PREFIX}_"):
        raise ValidationFailed(f"ids starting with {GENERATED_COUPON_PREFIX}_ are generated", field="id")
    return value


def normalize_code(value: str, field_name: str = "code") -> str:
    """Promotion codes compare case-insensitively: stored and looked up upper case."""
    code = value.strip().upper()
    if not PROMOTION_CODE_PATTERN.match(code):
        raise ValidationFailed(
            f"{field_name} must be 3-40 characters of letters, digits, '_', '-', "
            "starting with a letter or digit",
            field=field_name,
        )
    return code


def parse_minimum_amount(amount: Any, currency: str | None) -> tuple[int | None, str | None]:
    """A promotion code's minimum: both an amount (minor units, > 0) and its currency, or neither."""
    if amount is None and currency is None:
        return None, None
    if amount is None or currency is None:
        raise ValidationFailed(
            "minimum_amount and minimum_amount_currency go together", field="restrictions.minimum_amount"
        )
    return (
        _amount_off(amount, "restrictions.minimum_amount"),
        _currency(currency, "restrictions.minimum_amount_currency"),
    )


def check_future(at: datetime | None, now: datetime, field_name: str) -> datetime | None:
    if at is not None and at <= now:
        raise ValidationFailed(f"{field_name} must be in the future", field=field_name)
    return at


@dataclass(frozen=True, slots=True)
class CouponState:
    """What redemption rules need to know about a coupon at one moment."""

    id: str
    terms: CouponTerms
    active: bool = True
    redeem_by: datetime | None = None  # redeemable while `at < redeem_by`
    max_redemptions: int | None = None
    times_redeemed: int = 0
    plans: frozenset[str] | None = None  # plan keys it applies to; None = every plan


@dataclass(frozen=True, slots=True)
class PromotionState:
    id: str
    code: str
    coupon_id: str
    active: bool = True
    expires_at: datetime | None = None  # redeemable while `at < expires_at`
    max_redemptions: int | None = None
    times_redeemed: int = 0
    customer_id: str | None = None  # only this customer may redeem
    first_time_transaction: bool = False
    minimum_amount: int | None = None
    minimum_amount_currency: str | None = None


@dataclass(frozen=True, slots=True)
class Checkout:
    """Where a redemption would happen. `None` means "not known": a restriction that needs the value is
    reported as unchecked rather than guessed (redeem() treats unchecked as refused)."""

    at: datetime
    customer_id: str | None = None
    plan_key: str | None = None
    currency: str | None = None
    first_time: bool | None = None  # the customer has never been invoiced / never paid
    subtotal: int | None = None  # the first invoice's pre-discount, pre-tax subtotal, minor units


class RefusalReason(StrEnum):
    """Stable codes of a refused redemption, in the order `eligibility` checks them."""

    PROMOTION_CODE_INACTIVE = "promotion_code_inactive"
    PROMOTION_CODE_EXPIRED = "promotion_code_expired"
    PROMOTION_CODE_EXHAUSTED = "promotion_code_exhausted"
    COUPON_INACTIVE = "coupon_inactive"
    COUPON_EXPIRED = "coupon_expired"
    COUPON_EXHAUSTED = "coupon_exhausted"
    PROMOTION_CODE_NOT_FOR_CUSTOMER = "promotion_code_not_for_customer"
    NOT_FIRST_TIME_CUSTOMER = "not_first_time_customer"
    MINIMUM_AMOUNT_NOT_MET = "minimum_amount_not_met"
    COUPON_NOT_APPLICABLE = "coupon_not_applicable"
    COUPON_CURRENCY_MISMATCH = "coupon_currency_mismatch"


class Unchecked(StrEnum):
    """Restrictions `eligibility` could not evaluate because the checkout lacked the input they need."""

    CUSTOMER = "customer"
    FIRST_TIME_TRANSACTION = "first_time_transaction"
    MINIMUM_AMOUNT = "minimum_amount"
    PLAN = "plan"
    CURRENCY = "currency"


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: RefusalReason
    detail: str


@dataclass(frozen=True, slots=True)
class Eligibility:
    refusals: tuple[Refusal, ...] = ()
    unchecked: tuple[Unchecked, ...] = ()

    @property
    def applies(self) -> bool:
        """True only when nothing refuses and nothing was left unchecked."""
        return not self.refusals and not self.unchecked


def _open(until: datetime | None, at: datetime) -> bool:
    return until is None or at < until


def _room(max_redemptions: int | None, times_redeemed: int) -> bool:
    return max_redemptions is None or times_redeemed < max_redemptions


def coupon_valid(coupon: CouponState, at: datetime) -> bool:
    """Stripe's `valid`: the coupon can still be redeemed at `at` (active, not expired, not exhausted)."""
    return (
        coupon.active and _open(coupon.redeem_by, at) and _room(coupon.max_redemptions, coupon.times_redeemed)
    )


def eligibility(coupon: CouponState, promotion: PromotionState | None, checkout: Checkout) -> Eligibility:
    """Every reason the redemption of `coupon` (through `promotion`, if given) at `checkout` is refused.

    Order: the code's own state, then the coupon's state, then whether it fits this checkout (customer,
    first time, minimum amount, plan, currency). Callers report the first refusal; all are returned so a
    checkout page can show them. Pure: the counters here are the last read, and only a conditional
    UPDATE decides the last free redemption.
    """
    if promotion is not None and promotion.coupon_id != coupon.id:
        raise ValueError("the promotion code belongs to another coupon")
    at = checkout.at
    refusals: list[Refusal] = []
    unchecked: list[Unchecked] = []

    def refuse(reason: RefusalReason, detail: str) -> None:
        refusals.append(Refusal(reason, detail))

    if promotion is not None:
        if not promotion.active:
            refuse(RefusalReason.PROMOTION_CODE_INACTIVE, f"promotion code {promotion.code} is not active")
        if not _open(promotion.expires_at, at):
            refuse(RefusalReason.PROMOTION_CODE_EXPIRED, f"promotion code {promotion.code} has expired")
        if not _room(promotion.max_redemptions, promotion.times_redeemed):
            refuse(
                RefusalReason.PROMOTION_CODE_EXHAUSTED,
                f"promotion code {promotion.code} reached its {promotion.max_redemptions} redemptions",
            )
    if not coupon.active:
        refuse(RefusalReason.COUPON_INACTIVE, f"coupon {coupon.id} is no longer active")
    if not _open(coupon.redeem_by, at):
        refuse(RefusalReason.COUPON_EXPIRED, f"coupon {coupon.id} could be redeemed until {coupon.redeem_by}")
    if not _room(coupon.max_redemptions, coupon.times_redeemed):
        refuse(
            RefusalReason.COUPON_EXHAUSTED,
            f"coupon {coupon.id} reached its {coupon.max_redemptions} redemptions",
        )

    if promotion is not None:
        if promotion.customer_id is not None:
            if checkout.customer_id is None:
                unchecked.append(Unchecked.CUSTOMER)
            elif checkout.customer_id != promotion.customer_id:
                refuse(
                    RefusalReason.PROMOTION_CODE_NOT_FOR_CUSTOMER,
                    f"promotion code {promotion.code} is reserved for another customer",
                )
        if promotion.first_time_transaction:
            if checkout.first_time is None:
                unchecked.append(Unchecked.FIRST_TIME_TRANSACTION)
            elif not checkout.first_time:
                refuse(
                    RefusalReason.NOT_FIRST_TIME_CUSTOMER,
                    f"promotion code {promotion.code} is for customers who have never been invoiced",
                )
        if promotion.minimum_amount is not None:
            minimum = f"{promotion.minimum_amount} {promotion.minimum_amount_currency} (minor units)"
            if checkout.currency is not None and checkout.currency != promotion.minimum_amount_currency:
                refuse(
                    RefusalReason.MINIMUM_AMOUNT_NOT_MET,
                    f"promotion code {promotion.code} needs a subtotal of at least {minimum}, "
                    f"not a {checkout.currency} one",
                )
            elif checkout.subtotal is None or checkout.currency is None:
                unchecked.append(Unchecked.MINIMUM_AMOUNT)
            elif checkout.subtotal < promotion.minimum_amount:
                refuse(
                    RefusalReason.MINIMUM_AMOUNT_NOT_MET,
                    f"promotion code {promotion.code} needs a subtotal of at least {minimum}, "
                    f"got {checkout.subtotal}",
                )
    if coupon.plans is not None:
        if checkout.plan_key is None:
            unchecked.append(Unchecked.PLAN)
        elif checkout.plan_key not in coupon.plans:
            refuse(
                RefusalReason.COUPON_NOT_APPLICABLE,
                f"coupon {coupon.id} applies only to plans {', '.join(sorted(coupon.plans))}",
            )
    if coupon.terms.amount_off is not None:
        if checkout.currency is None:
            unchecked.append(Unchecked.CURRENCY)
        elif coupon.terms.amount_off_in(checkout.currency) is None:
            refuse(
                RefusalReason.COUPON_CURRENCY_MISMATCH,
                f"coupon {coupon.id} has no amount in {checkout.currency} "
                f"(it has {', '.join(sorted(coupon.terms.currencies))})",
            )
    return Eligibility(tuple(refusals), tuple(unchecked))


@dataclass(frozen=True, slots=True)
class Redemption:
    """A coupon claimed for one customer's checkout: what billing needs to discount its invoices.

    `amount_off`/`currency` are already resolved for the checkout's currency (a multi-currency coupon
    gives the amount in that currency); `percent_off` coupons carry no currency.
    """

    coupon_id: str
    promotion_code_id: str | None
    duration: CouponDuration
    duration_in_months: int | None
    percent_off: Decimal | None
    amount_off: int | None
    currency: str | None
    customer_id: str
    redeemed_at: datetime  # the checkout's `at`: billing's `applies_to_period` counts the duration from it
