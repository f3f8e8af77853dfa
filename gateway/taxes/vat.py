"""EU VAT numbers, checked offline with python-stdnum (format + check digits; no VIES lookup here)."""

from __future__ import annotations

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from gateway.taxes.domain import VAT_PREFIX_TO_COUNTRY


def compact_vat(value: str) -> str:
    """Compact upper-case form with the official prefix: "de 136.695.976" → "DE136695976", "GR…" → "EL…"."""
    compact = str(eu_vat.compact(value)).upper()
    return "EL" + compact[2:] if compact.startswith("GR") else compact


def eu_vat_country(value: str) -> str | None:
    """The member state (ISO 3166 code: "GR" for an "EL" number) of a valid EU VAT number, else None.
    A number valid under a non-member prefix (Northern Ireland's "XI") is not an EU VAT id here."""
    try:
        compact = compact_vat(value)
        if not eu_vat.is_valid(compact):
            return None
    except (ValidationError, ValueError, TypeError):
        return None
    return VAT_PREFIX_TO_COUNTRY.get(compact[:2])
