"""Taxes: the tax-rate catalog and the tax decision for an invoice. Public: `TaxService`, `tax_party`,
`issuer_from_settings` and the pure types of `gateway.taxes.domain`."""

from gateway.taxes.domain import (
    Issuer,
    LineTax,
    Rate,
    TaxDecision,
    TaxExempt,
    TaxParty,
    TaxSubtotal,
    breakdown,
    decide,
    line_tax,
)
from gateway.taxes.service import TaxService, issuer_from_settings, tax_party

__all__ = [
    "Issuer",
    "LineTax",
    "Rate",
    "TaxDecision",
    "TaxExempt",
    "TaxParty",
    "TaxService",
    "TaxSubtotal",
    "breakdown",
    "decide",
    "issuer_from_settings",
    "line_tax",
    "tax_party",
]
