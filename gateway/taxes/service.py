"""Tax use cases: the platform's tax-rate catalog, and the tax decision for a customer's invoice.

Customers and taxes are sibling domains (neither imports the other): `tax_party` reads the fields of a
customer row by shape (`TaxableCustomer`), so billing can hand over a `gateway.customers` row directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.taxes.domain import (
    InvalidTaxRate,
    Issuer,
    Rate,
    TaxDecision,
    TaxExempt,
    TaxParty,
    decide,
    format_percent,
    normalize_country,
    normalize_region,
    parse_percent,
)
from gateway.taxes.models import TaxRate
from gateway.taxes.repository import TaxRateRepository
from gateway.taxes.vat import eu_vat_country

TAX_TYPES = ("vat", "gst", "hst", "pst", "qst", "sales_tax", "jct", "igst", "cgst", "sgst", "other")
UPDATABLE = frozenset({"display_name", "active"})


class TaxRateNotFound(NotFound):
    code = "tax_rate_not_found"


class TaxRateImmutable(ValidationFailed):
    code = "tax_rate_immutable"


class TaxableCustomer(Protocol):
    """The customer fields tax needs (a `gateway.customers.models.Customer` row has them)."""

    @property
    def country(self) -> str | None: ...
    @property
    def address_region(self) -> str | None: ...
    @property
    def tax_exempt(self) -> str | None: ...
    @property
    def tax_ids(self) -> Sequence[Any]: ...


def tax_party(customer: TaxableCustomer) -> TaxParty:
    """The customer as tax sees it. VAT ids are re-checked here rather than trusting a stored flag, so a
    row written before validation existed is judged by the same rule. Without a country, the country of
    a valid EU VAT id stands in (the place of supply of a B2B service is where the business is)."""
    vat_countries = [
        country
        for entry in customer.tax_ids or ()
        if isinstance(entry, Mapping) and entry.get("type") == "eu_vat"
        for country in [eu_vat_country(str(entry.get("value", "")))]
        if country is not None
    ]
    country = (customer.country or "").upper() or (vat_countries[0] if vat_countries else None)
    try:
        exempt = TaxExempt(customer.tax_exempt or "none")
    except ValueError:
        exempt = TaxExempt.NONE
    try:
        region = normalize_region(customer.address_region, country)
    except InvalidTaxRate:
        region = None
    return TaxParty(
        country=country, region=region, tax_exempt=exempt, has_valid_eu_vat_id=bool(vat_countries)
    )


def issuer_from_settings(settings: Settings) -> Issuer:
    return Issuer(country=settings.issuer_country.upper(), vat_id=settings.issuer_vat_id or None)


def to_rate(row: TaxRate) -> Rate:
    return Rate(
        id=row.id,
        display_name=row.display_name,
        country=row.country,
        region=row.region,
        percent=parse_percent(row.percent),
        inclusive=row.inclusive,
        tax_type=row.tax_type,
        active=row.active,
    )


class TaxService:
    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.session = session
        self.repo = TaxRateRepository(session)
        self.clock = clock

    async def _event(self, type_: str, rate_id: str, data: dict[str, Any]) -> None:
        await record_event(self.session, DomainEvent(type_, "tax_rate", rate_id, self.clock.now(), data=data))

    # the catalog --------------------------------------------------------------------------------
    async def create_rate(
        self,
        *,
        display_name: str,
        country: str,
        percent: str,
        inclusive: bool = False,
        tax_type: str = "vat",
        region: str | None = None,
        active: bool = True,
    ) -> TaxRate:
        try:
            code = normalize_country(country)
            value = parse_percent(percent)
            subdivision = normalize_region(region, code)
        except InvalidTaxRate as exc:
            raise ValidationFailed(str(exc), field=exc.field) from None
        if tax_type not in TAX_TYPES:
            raise ValidationFailed(f"tax_type must be one of {', '.join(TAX_TYPES)}", field="tax_type")
        name = display_name.strip()
        if not name:
            raise ValidationFailed("display_name must not be blank", field="display_name")
        row = TaxRate(
            id=new_id("txr"),
            display_name=name,
            country=code,
            region=subdivision,
            percent=format_percent(value),
            inclusive=inclusive,
            tax_type=tax_type,
            active=active,
            created_at=self.clock.now(),
        )
        self.repo.add(row)
        await self.repo.flush()
        await self._event(
            "tax_rate.created", row.id, {"country": code, "region": subdivision, "percent": row.percent}
        )
        return row

    async def get_rate(self, rate_id: str) -> TaxRate:
        row = await self.repo.get(rate_id)
        if row is None:
            raise TaxRateNotFound(f"no tax rate {rate_id!r}")
        return row

    async def list_rates(
        self, *, after: str | None, limit: int, country: str | None = None, active: bool | None = None
    ) -> Page[TaxRate]:
        code = country.strip().upper() if country else None
        rows = await self.repo.list(after=after, limit=limit, country=code, active=active)
        return Page.from_overfetch(rows, limit)

    async def update_rate(self, rate_id: str, changes: dict[str, Any]) -> TaxRate:
        """Only the name and `active` change; the percentage is what issued invoices were taxed at."""
        refused = sorted(set(changes) - UPDATABLE)
        if refused:
            raise TaxRateImmutable(
                f"{', '.join(refused)} cannot change once a rate exists; create a new rate instead",
                field=refused[0],
            )
        row = await self.get_rate(rate_id)
        if "display_name" in changes:
            name = str(changes["display_name"]).strip()
            if not name:
                raise ValidationFailed("display_name must not be blank", field="display_name")
            row.display_name = name
        if "active" in changes:
            row.active = bool(changes["active"])
        await self.repo.flush()
        await self._event("tax_rate.updated", row.id, {"changed": sorted(changes)})
        return row

    # decisions ----------------------------------------------------------------------------------
    async def rates_for(self, country: str) -> list[Rate]:
        return [to_rate(r) for r in await self.repo.active_for_country(country.upper())]

    async def decide_for(self, customer: TaxableCustomer | TaxParty, issuer: Issuer) -> TaxDecision:
        """The tax treatment of an invoice from `issuer` to `customer` (a customer row or a `TaxParty`)."""
        party = customer if isinstance(customer, TaxParty) else tax_party(customer)
        rates = await self.rates_for(party.country) if party.country else []
        return decide(issuer, party, rates)
