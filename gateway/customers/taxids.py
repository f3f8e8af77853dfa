"""Customer tax ids. `eu_vat` values are checked offline with python-stdnum (format and check digits; no
VIES lookup here) and stored compact and upper case: {"type", "value", "country", "verified"}.

`verified` is true when the number is valid under a member state's prefix; a number that passes the check
digits under a non-member prefix (Northern Ireland's "XI") is kept with `verified: false`. An `eu_vat`
value that fails the check is refused. Other types are stored as given (trimmed), unverified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError

from gateway.kernel.errors import ValidationFailed

# VAT prefix → ISO 3166 country of the EU-27. WARNING: Greece's prefix is "EL", its country code "GR".
# (gateway.taxes keeps the same list for tax decisions; a test holds the two equal.)
MEMBER_STATE_PREFIXES: dict[str, str] = {
    **{c: c for c in "AT BE BG CY CZ DE DK EE ES FI FR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()},
    "EL": "GR",
}


class InvalidTaxId(ValidationFailed):
    code = "invalid_tax_id"


def normalize_tax_id(type_: str, value: str, *, index: int = 0) -> dict[str, Any]:
    kind = type_.strip().lower()
    raw = value.strip()
    if not raw:
        raise InvalidTaxId("a tax id needs a value", field=f"tax_ids[{index}].value")
    if kind != "eu_vat":
        return {"type": kind, "value": raw, "country": None, "verified": False}
    try:
        compact = str(eu_vat.compact(raw)).upper()
        valid = bool(eu_vat.is_valid(compact))
    except (ValidationError, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidTaxId(
            f"{raw!r} is not a valid EU VAT number (check digits or format)", field=f"tax_ids[{index}].value"
        )
    if compact.startswith("GR"):
        compact = "EL" + compact[2:]
    country = MEMBER_STATE_PREFIXES.get(compact[:2])
    return {"type": "eu_vat", "value": compact, "country": country, "verified": country is not None}


def normalize_tax_ids(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = []
    for i, entry in enumerate(entries):
        normalized = normalize_tax_id(str(entry.get("type", "")), str(entry.get("value", "")), index=i)
        if any(e["type"] == normalized["type"] and e["value"] == normalized["value"] for e in result):
            raise InvalidTaxId(f"tax id {normalized['value']} is listed twice", field=f"tax_ids[{i}]")
        result.append(normalized)
    return result
