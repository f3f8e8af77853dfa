"""Request and response types of the catalog API (msgspec). Amounts are minor units; decimals as strings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.catalog.models import Coupon as CouponRow
from gateway.catalog.models import Feature as FeatureRow
from gateway.catalog.models import Plan as PlanRow
from gateway.catalog.models import Price as PriceRow
from gateway.catalog.models import Product as ProductRow
from gateway.catalog.models import PromotionCode as PromotionCodeRow
from gateway.catalog.service import PlanTerms
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.money import whole_minor_units
from gateway.web.schemas import Metadata
from gateway.web.timestamps import AwareTimestamp

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Key = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
# An event property a usage price groups its lines by (a meter's group-by property, e.g. `region`).
GroupProperty = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")]
# Percent of a period's allowance (included units + usage credits) at which an alert fires.
AlertThreshold = Annotated[int, Meta(ge=1, le=1000)]
Text = Annotated[str, Meta(max_length=5000)]
Limit = int | Literal["unlimited"] | None
# {locale: name}: keys checked with gateway.i18n.normalize_locale, names 1-200 characters.
NameTranslations = Annotated[
    dict[Annotated[str, Meta(min_length=2, max_length=16)], Name], Meta(max_length=20)
]


class ProductCreate(Struct, forbid_unknown_fields=True):
    name: Name
    description: Text | None = None
    metadata: Metadata | None = None


class ProductUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    name_translations: NameTranslations | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class Product(Struct):
    id: str
    object: Literal["product"]
    name: str
    description: str | None
    active: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    name_translations: dict[str, str] | None = None

    @classmethod
    def of(cls, row: ProductRow) -> Product:
        return cls(
            row.id,
            "product",
            row.name,
            row.description,
            row.active,
            row.metadata_,
            row.created_at,
            row.updated_at,
            row.name_translations,
        )


class ProductList(Struct):
    data: list[Product]
    has_more: bool
    next_cursor: str | None


class FeatureCreate(Struct, forbid_unknown_fields=True):
    key: Key
    name: Name
    kind: Literal["boolean", "gauge", "metered"]
    unit: Annotated[str, Meta(max_length=40)] | None = None
    description: Text | None = None
    # Metered features: the meter whose events are the usage, and the alert percentages (default 80, 100).
    meter: Key | None = None
    alert_thresholds: Annotated[list[AlertThreshold], Meta(min_length=1, max_length=10)] | None = None


class Feature(Struct):
    id: str
    object: Literal["feature"]
    key: str
    name: str
    kind: str
    unit: str | None
    description: str | None
    created_at: datetime
    meter: str | None = None
    alert_thresholds: list[int] | None = None

    @classmethod
    def of(cls, row: FeatureRow) -> Feature:
        return cls(
            row.id,
            "feature",
            row.key,
            row.name,
            row.kind,
            row.unit,
            row.description,
            row.created_at,
            row.meter,
            row.alert_thresholds,
        )


class FeatureList(Struct):
    data: list[Feature]
    has_more: bool
    next_cursor: str | None


class GrantIn(Struct, forbid_unknown_fields=True):
    feature: Key
    limit: Annotated[int, Meta(ge=0, le=10**15)] | Literal["unlimited"] | None = None
    soft: bool = False


class GrantOut(Struct):
    feature: str
    kind: str
    limit: int | None
    unlimited: bool
    soft: bool


ProrationBehavior = Literal["create_prorations", "always_invoice", "none"]


class PlanCreate(Struct, forbid_unknown_fields=True):
    product: Annotated[str, Meta(min_length=1, max_length=40)]
    key: Key
    name: Name
    kind: Literal["base", "addon"] = "base"
    description: Text | None = None
    rank: Annotated[int, Meta(ge=0, le=1000)] = 0
    trial_days: Annotated[int, Meta(ge=0, le=730)] | None = None
    custom_pricing: bool = False
    compatible_plans: Annotated[list[Key], Meta(max_length=100)] = msgspec.field(default_factory=list)
    grants: Annotated[list[GrantIn], Meta(max_length=200)] = msgspec.field(default_factory=list)
    metadata: Metadata | None = None
    # Where mid-period changes put their proration; null = the service's `proration_behavior` setting.
    proration_behavior: ProrationBehavior | None = None


class PlanUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    name_translations: NameTranslations | UnsetType | None = UNSET
    description: Text | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET
    rank: Annotated[int, Meta(ge=0, le=1000)] | UnsetType = UNSET
    trial_days: Annotated[int, Meta(ge=0, le=730)] | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET
    proration_behavior: ProrationBehavior | UnsetType | None = UNSET


class GrantsPublish(Struct, forbid_unknown_fields=True):
    grants: Annotated[list[GrantIn], Meta(max_length=200)]
    note: Annotated[str, Meta(max_length=500)] | None = None


class PlanVersion(Struct):
    version: int
    note: str | None
    created_at: datetime
    grants: list[GrantOut]
    # Live subscriptions on this version (platform keys and staff; null for a tenant key, which must not
    # learn how many customers the platform has). Only in the list of a plan's versions.
    subscribers: int | None = None


class Plan(Struct):
    id: str
    object: Literal["plan"]
    product: str
    key: str
    name: str
    description: str | None
    kind: str
    active: bool
    rank: int
    trial_days: int | None
    custom_pricing: bool
    compatible_plans: list[str]
    proration_behavior: str | None
    current_version: int
    grants: list[GrantOut]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    name_translations: dict[str, str] | None = None

    @classmethod
    def of(cls, row: PlanRow, terms: PlanTerms) -> Plan:
        return cls(
            row.id,
            "plan",
            row.product_id,
            row.key,
            row.name,
            row.description,
            row.kind,
            row.active,
            row.rank,
            row.trial_days,
            row.custom_pricing,
            list(row.compatible_plans),
            row.proration_behavior,
            row.current_version,
            grants_out(terms),
            row.metadata_,
            row.created_at,
            row.updated_at,
            row.name_translations,
        )


def grants_out(terms: PlanTerms) -> list[GrantOut]:
    return [
        GrantOut(g.feature_key, g.kind.value, g.limit, g.kind != "boolean" and g.limit is None, g.soft)
        for g in terms.grants
    ]


def version_out(terms: PlanTerms, subscribers: int | None = None) -> PlanVersion:
    return PlanVersion(
        terms.version.version, terms.version.note, terms.version.created_at, grants_out(terms), subscribers
    )


class PlanList(Struct):
    data: list[Plan]
    has_more: bool
    next_cursor: str | None


class PlanVersionList(Struct):
    data: list[PlanVersion]


DecimalString = Annotated[str, Meta(pattern=r"^\d{1,15}(\.\d{1,12})?$")]
Amount = Annotated[int, Meta(ge=0, le=10**15)] | DecimalString


MinorUnits = Annotated[
    int, Meta(ge=0, le=10**15, description="Per-unit amount in integer minor units (2900 = $29.00)")
]
ExactMinorUnits = Annotated[
    str,
    Meta(
        pattern=r"^\d{1,15}(\.\d{1,12})?$",
        max_length=28,
        description='The same in minor units as a decimal string, for fractions of a minor unit ("0.06")',
    ),
]


def _exact_unit(unit_amount: int | None, unit_amount_decimal: str | None, where: str) -> str | None:
    if unit_amount is not None and unit_amount_decimal is not None:
        raise ValidationFailed(
            "give unit_amount or unit_amount_decimal, not both", field=f"{where}.unit_amount_decimal"
        )
    if unit_amount_decimal is not None:
        return unit_amount_decimal
    return None if unit_amount is None else str(unit_amount)


class TierIn(Struct, forbid_unknown_fields=True):
    up_to: Annotated[int, Meta(ge=1, le=10**15)] | None
    unit_amount: MinorUnits | None = None
    unit_amount_decimal: ExactMinorUnits | None = None
    flat_amount: Annotated[int, Meta(ge=0, le=10**15)] = 0


class CurrencyAmountsIn(Struct, forbid_unknown_fields=True):
    unit_amount: MinorUnits | None = None
    unit_amount_decimal: ExactMinorUnits | None = None
    tiers: Annotated[list[TierIn], Meta(max_length=50)] | None = None


class PriceCreate(Struct, forbid_unknown_fields=True):
    plan: Annotated[str, Meta(min_length=1, max_length=100)]
    model: Literal["flat", "per_seat", "graduated", "volume", "package", "usage"]
    interval: Literal["month", "quarter", "year"]
    currency_options: Annotated[
        dict[Annotated[str, Meta(min_length=3, max_length=3)], CurrencyAmountsIn],
        Meta(min_length=1, max_length=50),
    ]
    usage_type: Literal["licensed", "metered"] | None = None
    package_size: Annotated[int, Meta(ge=1, le=10**9)] | None = None
    package_rounding: Literal["up", "down"] | None = None
    metered_feature: Key | None = None
    # Metered prices: the meter they rate (default: the metered feature's meter), and the event properties
    # whose groups get invoice lines of their own.
    meter: Key | None = None
    usage_group_by: Annotated[list[GroupProperty], Meta(min_length=1, max_length=5)] | None = None
    alignment: Literal["anniversary", "calendar"] | None = None
    lookup_key: Key | None = None
    nickname: Name | None = None
    # Whether the amounts contain the tax (as Stripe's price.tax_behavior); unset follows the customer's
    # tax rate, so one country can have both inclusive and exclusive prices.
    tax_behavior: Literal["inclusive", "exclusive"] | None = None

    def currency_options_plain(self) -> dict[str, Any]:
        plain: dict[str, Any] = {}
        for code, amounts in self.currency_options.items():
            where = f"currency_options.{code}"
            entry: dict[str, Any] = {}
            unit = _exact_unit(amounts.unit_amount, amounts.unit_amount_decimal, where)
            if unit is not None:
                entry["unit_amount"] = unit
            if amounts.tiers is not None:
                entry["tiers"] = [
                    {
                        "up_to": t.up_to,
                        "unit_amount": _exact_unit(t.unit_amount, t.unit_amount_decimal, f"{where}.tiers")
                        or "0",
                        "flat_amount": t.flat_amount,
                    }
                    for i, t in enumerate(amounts.tiers)
                ]
            plain[code] = entry
        return plain


class PriceUpdate(Struct, forbid_unknown_fields=True):
    nickname: Name | UnsetType | None = UNSET
    lookup_key: Key | UnsetType | None = UNSET
    active: bool | UnsetType = UNSET


class TierOut(Struct):
    up_to: int | None
    unit_amount: Annotated[
        int | None, Meta(description="Per-unit amount in integer minor units; null when fractional")
    ]
    unit_amount_decimal: Annotated[str, Meta(description="The exact per-unit amount in minor units")]
    flat_amount: int

    @classmethod
    def of(cls, tier: dict[str, Any]) -> TierOut:
        exact = str(tier["unit_amount"])
        return cls(tier["up_to"], whole_minor_units(exact), exact, tier["flat_amount"])


class CurrencyAmountsOut(Struct, omit_defaults=True):
    unit_amount: Annotated[
        int | None, Meta(description="Per-unit amount in integer minor units; absent when fractional")
    ] = None
    unit_amount_decimal: Annotated[
        str | None, Meta(description='The exact per-unit amount in minor units ("2900", "0.06")')
    ] = None
    tiers: list[TierOut] | None = None


class Price(Struct):
    id: str
    object: Literal["price"]
    plan: str
    lookup_key: str | None
    nickname: str | None
    model: str
    interval: str
    usage_type: str
    alignment: str
    currency_options: dict[str, CurrencyAmountsOut]
    package_size: int | None
    package_rounding: str
    metered_feature: str | None
    active: bool
    created_at: datetime
    tax_behavior: Annotated[
        str | None,
        Meta(
            description="inclusive: the amounts contain the tax; exclusive: tax is added; null: as the "
            "customer's tax rate says"
        ),
    ]
    meter: str | None = None
    usage_group_by: list[str] | None = None

    @classmethod
    def of(cls, row: PriceRow) -> Price:
        options = {
            code: CurrencyAmountsOut(
                unit_amount=whole_minor_units(value.get("unit_amount")),
                unit_amount_decimal=None if value.get("unit_amount") is None else str(value["unit_amount"]),
                tiers=[TierOut.of(t) for t in value["tiers"]] if "tiers" in value else None,
            )
            for code, value in row.currency_options.items()
        }
        return cls(
            row.id,
            "price",
            row.plan_id,
            row.lookup_key,
            row.nickname,
            row.model,
            row.interval,
            row.usage_type,
            row.alignment,
            options,
            row.package_size,
            row.package_rounding,
            row.metered_feature,
            row.active,
            row.created_at,
            row.tax_behavior,
            row.meter,
            row.usage_group_by,
        )


class PriceList(Struct):
    data: list[Price]
    has_more: bool
    next_cursor: str | None


# -- coupons and promotion codes -----------------------------------------------------------------

CouponId = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
MinorAmount = Annotated[int, Meta(ge=1, le=10**15)]
PercentString = Annotated[str, Meta(max_length=6, pattern=r"^\d{1,3}(\.\d{1,2})?$")]
PromotionCodeText = Annotated[str, Meta(min_length=3, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")]
Redemptions = Annotated[int, Meta(ge=1, le=10**9)]


class CouponCurrencyOption(Struct, forbid_unknown_fields=True):
    amount_off: MinorAmount


class AppliesTo(Struct, forbid_unknown_fields=True):
    plans: Annotated[list[Annotated[str, Meta(min_length=1, max_length=100)]], Meta(max_length=100)]


class CouponCreate(Struct, forbid_unknown_fields=True):
    """Exactly one of `percent_off` (a number 0 < p ≤ 100 as an integer or a decimal string with at most
    two decimals, e.g. "12.5") or `amount_off` + `currency` (minor units)."""

    id: CouponId | None = None
    name: Name | None = None
    percent_off: Annotated[int, Meta(ge=0, le=100)] | PercentString | None = None
    amount_off: MinorAmount | None = None
    currency: Currency | None = None
    currency_options: Annotated[dict[Currency, CouponCurrencyOption], Meta(max_length=50)] | None = None
    duration: Literal["once", "repeating", "forever"] = "once"
    duration_in_months: Annotated[int, Meta(ge=1, le=1200)] | None = None
    max_redemptions: Redemptions | None = None
    redeem_by: AwareTimestamp | None = None
    applies_to: AppliesTo | None = None
    metadata: Metadata | None = None


class CouponUpdate(Struct, forbid_unknown_fields=True):
    """Only the name and metadata change: a coupon's terms are immutable."""

    name: Name | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET


class AppliesToOut(Struct):
    plans: list[str]


class Coupon(Struct):
    id: str
    object: Literal["coupon"]
    name: str | None
    percent_off: str | None
    amount_off: int | None
    currency: str | None
    currency_options: dict[str, CouponCurrencyOption]
    duration: str
    duration_in_months: int | None
    max_redemptions: int | None
    times_redeemed: int
    redeem_by: datetime | None
    applies_to: AppliesToOut | None
    active: bool
    valid: bool
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: CouponRow, *, valid: bool) -> Coupon:
        return cls(
            row.id,
            "coupon",
            row.name,
            row.percent_off,
            row.amount_off,
            row.currency,
            {code: CouponCurrencyOption(int(amount)) for code, amount in row.currency_options.items()},
            row.duration,
            row.duration_in_months,
            row.max_redemptions,
            row.times_redeemed,
            row.redeem_by,
            AppliesToOut(list(row.applies_to_plans)) if row.applies_to_plans is not None else None,
            row.active,
            valid,
            row.metadata_,
            row.created_at,
            row.updated_at,
        )


class CouponList(Struct):
    data: list[Coupon]
    has_more: bool
    next_cursor: str | None


class RestrictionsIn(Struct, forbid_unknown_fields=True):
    first_time_transaction: bool = False
    minimum_amount: MinorAmount | None = None
    minimum_amount_currency: Currency | None = None


class PromotionCodeCreate(Struct, forbid_unknown_fields=True):
    """`code` is case-insensitive (stored upper case) and generated when left out."""

    coupon: CouponId
    code: PromotionCodeText | None = None
    active: bool = True
    max_redemptions: Redemptions | None = None
    expires_at: AwareTimestamp | None = None
    customer: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    restrictions: RestrictionsIn | None = None
    metadata: Metadata | None = None


class PromotionCodeUpdate(Struct, forbid_unknown_fields=True):
    active: bool | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class Restrictions(Struct):
    first_time_transaction: bool
    minimum_amount: int | None
    minimum_amount_currency: str | None


class PromotionCode(Struct):
    id: str
    object: Literal["promotion_code"]
    code: str
    coupon: Coupon
    active: bool
    max_redemptions: int | None
    times_redeemed: int
    expires_at: datetime | None
    customer: str | None
    restrictions: Restrictions
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: PromotionCodeRow, coupon: Coupon) -> PromotionCode:
        return cls(
            row.id,
            "promotion_code",
            row.code,
            coupon,
            row.active,
            row.max_redemptions,
            row.times_redeemed,
            row.expires_at,
            row.customer_id,
            Restrictions(row.first_time_transaction, row.minimum_amount, row.minimum_amount_currency),
            row.metadata_,
            row.created_at,
            row.updated_at,
        )


class PromotionCodeList(Struct):
    data: list[PromotionCode]
    has_more: bool
    next_cursor: str | None


class PromotionCodeValidate(Struct, forbid_unknown_fields=True):
    """Would `code` apply now? Give what the checkout knows; a restriction that needs a value you left
    out is listed in `unchecked` instead of being guessed. `price` (id or lookup key) implies its plan,
    its currency when it has only one, and, for a flat price, the amount."""

    code: Annotated[str, Meta(min_length=1, max_length=40)]
    customer: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    plan: Annotated[str, Meta(min_length=1, max_length=100)] | None = None
    price: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    currency: Currency | None = None
    amount: Annotated[int, Meta(ge=0, le=10**15)] | None = None
    first_time_transaction: bool | None = None


class RefusalOut(Struct):
    code: str
    detail: str


class PromotionCodeValidation(Struct):
    object: Literal["promotion_code_validation"]
    valid: bool
    code: str
    promotion_code: str
    coupon: Coupon
    # The first refusal's code (what redeeming now would answer with), or null.
    reason: str | None
    refusals: list[RefusalOut]
    unchecked: list[str]
