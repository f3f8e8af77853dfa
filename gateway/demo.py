"""The demo catalog of a project-management SaaS, and a few customers on it (`tiergate seed-demo`).

Idempotent: running it twice leaves one catalog (it stops if the `basic` plan exists already).
Amounts are minor units: 900 = $9.00. Yearly prices are 12 months at 20% off: 9 × 12 × 0.8 = $86.40.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig, billed_subscriptions
from gateway.catalog import CatalogService, CouponService, GrantInput
from gateway.catalog.repository import CatalogRepository
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.identity.service import ApiKeyService
from gateway.kernel.clock import Clock
from gateway.taxes.service import TaxService

FEATURES = [
    ("projects", "Projects", "gauge", "projects"),
    ("seats", "Users", "gauge", "users"),
    ("storage_mb", "Storage", "gauge", "MB"),
    ("api_calls", "API calls", "metered", "calls"),
    ("reporting_basic", "Basic reporting", "boolean", None),
    ("reporting_advanced", "Advanced reporting", "boolean", None),
    ("reporting_custom", "Custom reporting", "boolean", None),
    ("support_email", "E-mail support", "boolean", None),
    ("support_priority", "Priority e-mail support", "boolean", None),
    ("support_dedicated", "Dedicated support", "boolean", None),
    ("sso", "Single sign-on", "boolean", None),
]

UNLIMITED = "unlimited"
GrantSpec = tuple[str, int | str | None]
TIERS: list[tuple[str, str, int, int, int, bool, list[GrantSpec]]] = [
    # key, name, rank, monthly USD cents, monthly EUR cents, custom pricing, grants
    (
        "basic",
        "Basic",
        1,
        900,
        900,
        False,
        [
            ("projects", 5),
            ("seats", 1),
            ("storage_mb", 1024),
            ("api_calls", 10_000),
            ("reporting_basic", None),
            ("support_email", None),
        ],
    ),
    (
        "pro",
        "Pro",
        2,
        2900,
        2700,
        False,
        [
            ("projects", UNLIMITED),
            ("seats", 10),
            ("storage_mb", 10_240),
            ("api_calls", 100_000),
            ("reporting_basic", None),
            ("reporting_advanced", None),
            ("support_email", None),
            ("support_priority", None),
        ],
    ),
    (
        "enterprise",
        "Enterprise",
        3,
        9900,
        9500,
        True,
        [
            ("projects", UNLIMITED),
            ("seats", UNLIMITED),
            ("storage_mb", 102_400),
            ("api_calls", UNLIMITED),
            ("reporting_basic", None),
            ("reporting_advanced", None),
            ("reporting_custom", None),
            ("support_email", None),
            ("support_priority", None),
            ("support_dedicated", None),
            ("sso", None),
        ],
    ),
]
YEARLY_DISCOUNT_PERCENT = 20


def yearly(monthly_minor: int) -> int:
    # 12 months less 20%, in whole minor units (exact for the demo amounts: 900 → 8640).
    return monthly_minor * 12 * (100 - YEARLY_DISCOUNT_PERCENT) // 100


@dataclass
class DemoResult:
    api_key: str | None
    customers: dict[str, str]
    created: bool


async def seed_catalog(session: AsyncSession, clock: Clock) -> None:
    """Only the catalog: product, features, the three tiers with monthly/yearly USD/EUR prices, an add-on."""
    catalog = CatalogService(CatalogRepository(session), clock)
    product = await catalog.create_product(
        name="Acme Projects", description="Project management for teams (demo catalog)"
    )
    for key, name, kind, unit in FEATURES:
        await catalog.create_feature(key=key, name=name, kind=kind, unit=unit)
    for key, name, rank, usd, eur, custom, grants in TIERS:
        plan = await catalog.create_plan(
            product_id=product.id,
            key=key,
            name=name,
            rank=rank,
            custom_pricing=custom,
            trial_days=14 if key == "pro" else None,
            grants=[GrantInput(feature=f, limit=limit) for f, limit in grants],
        )
        await catalog.create_price(
            plan_id=plan.id,
            model="flat",
            interval="month",
            lookup_key=f"{key}_monthly",
            nickname=f"{name} monthly",
            currency_options={"USD": {"unit_amount": usd}, "EUR": {"unit_amount": eur}},
        )
        await catalog.create_price(
            plan_id=plan.id,
            model="flat",
            interval="year",
            lookup_key=f"{key}_yearly",
            nickname=f"{name} yearly (20% off)",
            currency_options={"USD": {"unit_amount": yearly(usd)}, "EUR": {"unit_amount": yearly(eur)}},
        )
    extra_seats = await catalog.create_plan(
        product_id=product.id,
        key="extra_seats",
        name="Extra seats",
        kind="addon",
        compatible_plans=["pro"],
        grants=[GrantInput(feature="seats", limit=5)],
    )
    await catalog.create_price(
        plan_id=extra_seats.id,
        model="per_seat",
        interval="month",
        lookup_key="extra_seats_monthly",
        nickname="5 extra seats",
        currency_options={"USD": {"unit_amount": 1000}, "EUR": {"unit_amount": 900}},
    )


DEMO_CUSTOMERS = [
    # name, e-mail, currency, country, price lookup key, trial days
    ("Tiny Studio", "owner@tiny.example", "USD", "US", "basic_monthly", 0),
    ("Bright Agency", "ops@bright.example", "EUR", "DE", "pro_monthly", 0),
    ("Globex Corp", "it@globex.example", "USD", "US", "enterprise_yearly", 0),
    ("Fresh Startup", "founder@fresh.example", "USD", "FR", "pro_monthly", 14),
]


# VAT rates of the demo issuer's market (exclusive: added on top of the prices).
DEMO_TAX_RATES = [("IE", "VAT", "23"), ("DE", "MwSt.", "19"), ("FR", "TVA", "20")]


async def seed_billing(session: AsyncSession, clock: Clock) -> None:
    """Tax rates and a launch offer: coupon `launch20` (20 % off for 3 months) behind the promotion
    code LAUNCH, for first-time customers."""
    taxes = TaxService(session, clock)
    for country, name, percent in DEMO_TAX_RATES:
        await taxes.create_rate(display_name=name, country=country, percent=percent)
    coupons = CouponService(CatalogRepository(session), clock)
    await coupons.create_coupon(
        id="launch20",
        name="Launch offer",
        percent_off="20",
        duration="repeating",
        duration_in_months=3,
    )
    await coupons.create_promotion_code(coupon="launch20", code="LAUNCH", first_time_transaction=True)


async def seed_demo(
    session: AsyncSession,
    clock: Clock,
    *,
    api_key: str | None = None,
    config: BillingConfig | None = None,
) -> DemoResult:
    catalog = CatalogService(CatalogRepository(session), clock)
    customers = CustomerService(CustomerRepository(session), clock)
    subscriptions = billed_subscriptions(session, clock, config or BillingConfig())
    keys = ApiKeyService(session, clock)

    if await catalog.repo.get_plan("basic") is not None:
        if api_key is not None:
            await keys.ensure_bootstrap(api_key)
        return DemoResult(api_key=api_key, customers={}, created=False)
    await seed_catalog(session, clock)
    await seed_billing(session, clock)

    created: dict[str, str] = {}
    for name, email, currency, country, price, trial in DEMO_CUSTOMERS:
        customer = await customers.create(name=name, email=email, currency=currency, country=country)
        await customers.add_member(customer.id, email=email, name=None, role="owner")
        await subscriptions.create(customer_id=customer.id, price=price, trial_days=trial)
        created[name] = customer.id

    if api_key is not None:
        await keys.ensure_bootstrap(api_key)
        secret = api_key
    else:
        _, secret = await keys.create(name="demo admin", scopes=["*"], tenant_id=None)
    return DemoResult(api_key=secret, customers=created, created=True)
