"""Builds the billing services for one unit of work, and a subscription service that bills.

Every place that moves subscriptions (HTTP requests, test clocks, the billing run, the demo seed) gets
its `SubscriptionService` from `billed_subscriptions`, so no path can renew a subscription without
invoicing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.discount_service import DiscountService
from gateway.billing.domain import TaxTreatment
from gateway.billing.metered import MeteredPricing
from gateway.billing.repository import BillingRepository
from gateway.billing.service import BankAccount, CollectionSettings, InvoiceService, Issuer
from gateway.billing.subscription_billing import BillingSettings, SubscriptionBilling
from gateway.catalog import CatalogService, CouponService
from gateway.catalog.repository import CatalogRepository
from gateway.config import Settings
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.kernel.clock import Clock
from gateway.metering.allowance_service import AllowanceService
from gateway.metering.ports import MeterUsage
from gateway.metering.usage_source import DatabaseMeterUsage
from gateway.subscriptions import SubscriptionService
from gateway.subscriptions.domain import MAX_DAYS_UNTIL_DUE
from gateway.subscriptions.ports import NO_PAYMENT_METHODS, PaymentMethodLookup
from gateway.subscriptions.repository import SubscriptionRepository
from gateway.taxes.domain import Issuer as TaxIssuer
from gateway.taxes.domain import Rate, decide
from gateway.taxes.service import TaxService, tax_party


def no_payment_methods(_session: AsyncSession) -> PaymentMethodLookup:
    return NO_PAYMENT_METHODS


@dataclass(frozen=True, slots=True)
class BillingConfig:
    issuer: Issuer = field(default_factory=Issuer)
    tax_issuer: TaxIssuer | None = None
    settings: BillingSettings = field(default_factory=BillingSettings)
    collection: CollectionSettings = field(default_factory=CollectionSettings)
    # Answers "does this customer have a usable default payment method?" for one unit of work. The
    # payments domain (above billing) provides the real one; the composition root passes it in.
    payment_methods: Callable[[AsyncSession], PaymentMethodLookup] = no_payment_methods
    # The meters' usage for a unit of work (gateway.metering); none wired = nothing metered.
    meters: Callable[[AsyncSession], MeterUsage] = field(default=DatabaseMeterUsage)

    @classmethod
    def from_settings(cls, settings: Settings) -> BillingConfig:
        from gateway.billing.proration import ProrationMode
        from gateway.subscriptions.domain import ProrationBehavior

        return cls(
            issuer=Issuer(
                name=settings.issuer_name,
                address=settings.issuer_address,
                country=settings.issuer_country or None,
                vat_id=settings.issuer_vat_id or None,
                email=settings.issuer_email or None,
                number_prefix=settings.invoice_number_prefix,
            ),
            tax_issuer=TaxIssuer(
                country=settings.issuer_country.upper(), vat_id=settings.issuer_vat_id or None
            )
            if settings.issuer_country
            else None,
            settings=BillingSettings(
                proration_behavior=ProrationBehavior(settings.proration_behavior),
                proration_mode=ProrationMode(settings.proration_mode),
                usage_adjustment_days=settings.usage_adjustment_window_days,
            ),
            collection=collection_settings(settings),
        )


def collection_settings(settings: Settings) -> CollectionSettings:
    """The send_invoice defaults; a malformed IBAN or an out-of-range default refuses to start."""
    from stdnum import bic as stdnum_bic
    from stdnum import iban as stdnum_iban

    if not 0 <= settings.days_until_due <= MAX_DAYS_UNTIL_DUE:
        raise ValueError(f"days_until_due must be between 0 and {MAX_DAYS_UNTIL_DUE}")
    iban = stdnum_iban.validate(settings.issuer_iban) if settings.issuer_iban else None
    bic = stdnum_bic.validate(settings.issuer_bic) if settings.issuer_bic else None
    bank = BankAccount(
        account_name=settings.issuer_bank_account_name or settings.issuer_name, iban=iban, bic=bic
    )
    return CollectionSettings(days_until_due=settings.days_until_due, bank=bank)


class TaxResolver:
    """A customer's tax treatment, with the rates of each country read once per unit of work."""

    def __init__(self, taxes: TaxService, issuer: TaxIssuer | None) -> None:
        self.taxes = taxes
        self.issuer = issuer
        self._rates: dict[str, list[Rate]] = {}

    async def __call__(self, customer: Customer) -> TaxTreatment:
        if self.issuer is None:
            return TaxTreatment()
        party = tax_party(customer)
        rates: list[Rate] = []
        if party.country:
            if party.country not in self._rates:
                self._rates[party.country] = await self.taxes.rates_for(party.country)
            rates = self._rates[party.country]
        decision = decide(self.issuer, party, rates)
        mentions = (decision.legal_mention,) if decision.legal_mention else ()
        if decision.rate is None:
            return TaxTreatment(reverse_charge=decision.reverse_charge, mentions=mentions)
        return TaxTreatment(
            percent=decision.rate.percent,
            inclusive=decision.rate.inclusive,
            rate_id=decision.rate.id,
            label=decision.rate.label,
            reverse_charge=decision.reverse_charge,
            mentions=mentions,
        )


@dataclass(slots=True)
class BillingServices:
    invoices: InvoiceService
    discounts: DiscountService
    billing: SubscriptionBilling
    subscriptions: SubscriptionService
    catalog: CatalogService
    customers: CustomerService


def billing_services(
    session: AsyncSession,
    clock: Clock,
    config: BillingConfig,
    *,
    catalog: CatalogService | None = None,
    customers: CustomerService | None = None,
) -> BillingServices:
    catalog = catalog or CatalogService(CatalogRepository(session), clock)
    customers = customers or CustomerService(CustomerRepository(session), clock)
    repo = BillingRepository(session)
    invoices = InvoiceService(
        repo,
        issuer=config.issuer,
        taxes=TaxResolver(TaxService(session, clock), config.tax_issuer),
        collection=config.collection,
    )
    discounts = DiscountService(repo, CouponService(CatalogRepository(session), clock), catalog)
    subscriptions = SubscriptionService(
        SubscriptionRepository(session),
        catalog,
        customers,
        clock,
        payment_methods=config.payment_methods(session),
    )
    billing = SubscriptionBilling(
        invoices,
        catalog,
        customers,
        addons_of=subscriptions.addons,
        coupons_for=discounts.coupons_for,
        redeem=discounts.redeem_for_new_subscription,
        settings=config.settings,
        metered=MeteredPricing(
            catalog,
            config.meters(session),
            AllowanceService(session),
            subscriptions.addons,
            window=timedelta(days=config.settings.usage_adjustment_days),
        ),
    )
    subscriptions.listeners = (billing,)
    return BillingServices(invoices, discounts, billing, subscriptions, catalog, customers)


def billed_subscriptions(session: AsyncSession, clock: Clock, config: BillingConfig) -> SubscriptionService:
    return billing_services(session, clock, config).subscriptions
