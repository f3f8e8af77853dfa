"""Tax rules, pure: which rate applies to a customer (or reverse charge / exemption), and per-line tax math.

Amounts are integer minor units; intermediates are `Decimal`; each line is rounded once, half-up, to a
whole minor unit (billing rule 20). The invoice's tax total is the sum of its rounded line taxes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from gateway.kernel.money import round_minor

# The EU-27 by ISO 3166-1 alpha-2 country code. WARNING: Greece is "GR" as a country but "EL" as a VAT
# prefix; Northern Ireland's "XI" VAT prefix (goods only) is not a member state for services.
EU_MEMBER_STATES: frozenset[str] = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()
)
VAT_PREFIX_TO_COUNTRY: dict[str, str] = {**{c: c for c in EU_MEMBER_STATES if c != "GR"}, "EL": "GR"}

REVERSE_CHARGE_MENTION = (
    "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)"
)
# Without an EU issuer the directive does not apply; the recipient still accounts for the tax.
REVERSE_CHARGE_MENTION_NON_EU = "Reverse charge: tax to be accounted for by the recipient"
TAX_EXEMPT_MENTION = "Tax exempt"

MAX_PERCENT = Decimal(100)
PERCENT_PLACES = 4
COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")
REGION_PATTERN = re.compile(r"^[A-Z0-9]{1,3}$")


class TaxExempt(StrEnum):
    NONE = "none"
    EXEMPT = "exempt"
    REVERSE = "reverse"


class InvalidTaxRate(ValueError):
    """A rate's terms are out of range (the service turns this into a 422)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_percent(raw: str | Decimal | int) -> Decimal:
    """A percentage 0 ≤ p < 100 with at most 4 decimals, as a Decimal (never a float)."""
    if isinstance(raw, float):
        raise InvalidTaxRate("percent must be a decimal string, not a float", "percent")
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise InvalidTaxRate(f"percent {raw!r} is not a decimal number", "percent") from None
    if not value.is_finite():
        raise InvalidTaxRate("percent must be a finite number", "percent")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -PERCENT_PLACES:
        raise InvalidTaxRate(f"percent takes at most {PERCENT_PLACES} decimals", "percent")
    if not (Decimal(0) <= value < MAX_PERCENT):
        raise InvalidTaxRate("percent must be at least 0 and below 100", "percent")
    return value


def format_percent(value: Decimal) -> str:
    """Canonical string: no exponent, no trailing zeros ("19", "8.875", "0")."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def normalize_country(raw: str) -> str:
    code = raw.strip().upper()
    if not COUNTRY_PATTERN.match(code):
        raise InvalidTaxRate("country must be an ISO 3166-1 alpha-2 code", "country")
    return code


def normalize_region(raw: str | None, country: str | None) -> str | None:
    """A subdivision code without its country prefix: "US-CA" or "ca" (with country US) → "CA"."""
    if raw is None or not raw.strip():
        return None
    code = raw.strip().upper()
    if country and code.startswith(f"{country}-"):
        code = code[len(country) + 1 :]
    if not REGION_PATTERN.match(code):
        raise InvalidTaxRate("region must be an ISO 3166-2 subdivision code such as CA or US-CA", "region")
    return code


@dataclass(frozen=True, slots=True)
class Rate:
    """A configured tax rate, as the rules see it."""

    id: str
    display_name: str
    country: str
    region: str | None
    percent: Decimal
    inclusive: bool
    tax_type: str
    active: bool = True

    @property
    def label(self) -> str:
        """ "VAT 19%", "Sales tax 8.875% (US-CA)"."""
        where = f" ({self.country}-{self.region})" if self.region else ""
        return f"{self.display_name} {format_percent(self.percent)}%{where}"


@dataclass(frozen=True, slots=True)
class Issuer:
    """Who sells: the platform operator (settings issuer_country / issuer_vat_id)."""

    country: str
    vat_id: str | None = None

    @property
    def in_eu(self) -> bool:
        return self.country.upper() in EU_MEMBER_STATES


@dataclass(frozen=True, slots=True)
class TaxParty:
    """Who buys, as far as tax is concerned. `has_valid_eu_vat_id` means a checksum-valid VAT number with
    a member-state prefix (offline check; no VIES here)."""

    country: str | None
    region: str | None = None
    tax_exempt: TaxExempt = TaxExempt.NONE
    has_valid_eu_vat_id: bool = False

    @property
    def in_eu(self) -> bool:
        return self.country is not None and self.country.upper() in EU_MEMBER_STATES


@dataclass(frozen=True, slots=True)
class LineTax:
    """One line's split: `net + tax == total` always. For an exclusive rate `net` is the line amount; for
    an inclusive one `total` is."""

    net: int
    tax: int
    total: int


@dataclass(frozen=True, slots=True)
class TaxDecision:
    """What applies to a customer's invoice. `rate` None = no tax (none configured, exempt, or reverse
    charge); `legal_mention` goes on the invoice when set."""

    rate: Rate | None
    reverse_charge: bool = False
    legal_mention: str | None = None

    @property
    def percent(self) -> Decimal:
        return self.rate.percent if self.rate is not None else Decimal(0)

    def tax_line(self, amount: int) -> LineTax:
        if self.rate is None:
            return LineTax(net=amount, tax=0, total=amount)
        return line_tax(amount, self.rate.percent, inclusive=self.rate.inclusive)


NO_TAX = TaxDecision(rate=None)


def line_tax(amount: int, percent: Decimal, *, inclusive: bool) -> LineTax:
    """Tax of one line of `amount` minor units, rounded once, half-up (negative lines mirror positive ones).

    Exclusive: tax = round(amount × p / 100), total = amount + tax.
    Inclusive: the amount already contains the tax: tax = round(amount − amount / (1 + p/100)), computed as
    amount × p / (100 + p) so no intermediate is rounded; net = amount − tax.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("amount must be an int of minor units")
    if not isinstance(percent, Decimal):
        raise TypeError("percent must be a Decimal")
    base = Decimal(amount)
    if inclusive:
        tax = round_minor(base * percent / (MAX_PERCENT + percent))
        return LineTax(net=amount - tax, tax=tax, total=amount)
    tax = round_minor(base * percent / MAX_PERCENT)
    return LineTax(net=amount, tax=tax, total=amount + tax)


def _select_rate(party: TaxParty, rates: Iterable[Rate]) -> Rate | None:
    """An active region rate beats the country rate; among equals the newest (ids are time-ordered), since
    a new rate is how a percentage changes."""
    if party.country is None:
        return None
    country = party.country.upper()
    region = party.region.upper() if party.region else None
    candidates = [r for r in rates if r.active and r.country.upper() == country]
    regional = [r for r in candidates if region is not None and r.region and r.region.upper() == region]
    national = [r for r in candidates if not r.region]
    for group in (regional, national):
        if group:
            return max(group, key=lambda r: r.id)
    return None


def decide(issuer: Issuer, party: TaxParty, rates: Sequence[Rate]) -> TaxDecision:
    """The tax treatment of a sale from `issuer` to `party`, given the configured `rates`.

    1. `exempt` customers pay no tax ("Tax exempt").
    2. Reverse charge (0 %, with the legal mention) when the customer is marked `reverse`, or when the
       issuer is in the EU and the customer is a business (valid EU VAT id) in another member state.
       Same-country B2B pays the normal rate.
    3. Otherwise the customer's region rate, else its country rate, else no tax.
    """
    if party.tax_exempt == TaxExempt.EXEMPT:
        return TaxDecision(rate=None, reverse_charge=False, legal_mention=TAX_EXEMPT_MENTION)
    cross_border_eu_b2b = (
        issuer.in_eu
        and party.in_eu
        and party.has_valid_eu_vat_id
        and (party.country or "").upper() != issuer.country.upper()
    )
    if party.tax_exempt == TaxExempt.REVERSE or cross_border_eu_b2b:
        mention = REVERSE_CHARGE_MENTION if issuer.in_eu else REVERSE_CHARGE_MENTION_NON_EU
        return TaxDecision(rate=None, reverse_charge=True, legal_mention=mention)
    rate = _select_rate(party, rates)
    return TaxDecision(rate=rate) if rate is not None else NO_TAX


@dataclass(frozen=True, slots=True)
class TaxSubtotal:
    """One rate's share of an invoice: the sum of its lines' rounded nets and taxes."""

    rate: Rate
    net: int
    tax: int


def breakdown(lines: Iterable[tuple[Rate | None, LineTax]]) -> list[TaxSubtotal]:
    """Per-rate totals in first-seen order; untaxed lines are left out. Sums of already rounded lines, so
    the breakdown always adds up to the invoice's tax total."""
    totals: dict[str, TaxSubtotal] = {}
    for rate, tax in lines:
        if rate is None:
            continue
        seen = totals.get(rate.id)
        totals[rate.id] = (
            TaxSubtotal(rate, tax.net, tax.tax)
            if seen is None
            else TaxSubtotal(rate, seen.net + tax.net, seen.tax + tax.tax)
        )
    return list(totals.values())
