"""Customer tax ids, stored as {"type", "value", "country", "verified"}. Every value is checked offline
with python-stdnum (format and check digits; no VIES or registry lookup here); one that fails is refused.

* `eu_vat`: stored compact and upper case under its prefix (`NL004495445B01`). `verified` is true when the
  prefix is a member state's; a number that passes the check digits under a non-member prefix (Northern
  Ireland's "XI") is kept with `verified: false`.
* The other types, named as Stripe names them (`gb_vat`, `ch_vat`, `no_vat`, `au_abn`, `us_ein`, ...:
  `TAX_ID_TYPES`), belong to one country each and are stored in their usual written form
  (`CHE-116.281.710 MWST`, `12-3456789`), `verified: true`. A type not in the list is refused
  (`unsupported_tax_id_type`), as Stripe refuses one: a number nobody can check is not a tax id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from stdnum.au import abn as au_abn
from stdnum.br import cnpj as br_cnpj
from stdnum.ca import bn as ca_bn
from stdnum.ch import vat as ch_vat
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.gb import vat as gb_vat
from stdnum.in_ import gstin as in_gst
from stdnum.is_ import vsk as is_vat
from stdnum.jp import cn as jp_cn
from stdnum.kr import brn as kr_brn
from stdnum.mx import rfc as mx_rfc
from stdnum.no import mva as no_vat
from stdnum.nz import ird as nz_gst
from stdnum.sg import uen as sg_uen
from stdnum.tr import vkn as tr_tin
from stdnum.us import ein as us_ein

from gateway.kernel.errors import ValidationFailed

# VAT prefix → ISO 3166 country of the EU-27. WARNING: Greece's prefix is "EL", its country code "GR".
# (gateway.taxes keeps the same list for tax decisions; a test holds the two equal.)
MEMBER_STATE_PREFIXES: dict[str, str] = {
    **{c: c for c in "AT BE BG CY CZ DE DK EE ES FI FR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()},
    "EL": "GR",
}


class InvalidTaxId(ValidationFailed):
    code = "invalid_tax_id"


class UnsupportedTaxIdType(ValidationFailed):
    code = "unsupported_tax_id_type"


@dataclass(frozen=True, slots=True)
class TaxIdType:
    """A national tax id: the country it belongs to, how invoices label it, and its stdnum checker."""

    country: str
    label: str
    checker: ModuleType | None  # None: eu_vat, checked by `_eu_vat` (a prefix per member state)


# Stripe's type names, so an app moving from Stripe sends the same ones.
TAX_ID_TYPES: dict[str, TaxIdType] = {
    "eu_vat": TaxIdType("EU", "VAT", None),
    "gb_vat": TaxIdType("GB", "GB VAT", gb_vat),
    "ch_vat": TaxIdType("CH", "CH VAT", ch_vat),
    "no_vat": TaxIdType("NO", "NO VAT", no_vat),
    "is_vat": TaxIdType("IS", "IS VAT", is_vat),
    "au_abn": TaxIdType("AU", "ABN", au_abn),
    "nz_gst": TaxIdType("NZ", "NZ GST", nz_gst),
    "ca_bn": TaxIdType("CA", "BN", ca_bn),
    "us_ein": TaxIdType("US", "EIN", us_ein),
    "in_gst": TaxIdType("IN", "GSTIN", in_gst),
    "br_cnpj": TaxIdType("BR", "CNPJ", br_cnpj),
    "jp_cn": TaxIdType("JP", "Corporate Number", jp_cn),
    "kr_brn": TaxIdType("KR", "BRN", kr_brn),
    "mx_rfc": TaxIdType("MX", "RFC", mx_rfc),
    "sg_uen": TaxIdType("SG", "UEN", sg_uen),
    "tr_tin": TaxIdType("TR", "VKN", tr_tin),
}


def tax_id_label(kind: str) -> str:
    """How an invoice names the type: "VAT", "EIN", "ABN"; an unknown (older) type in capitals."""
    known = TAX_ID_TYPES.get(kind)
    return known.label if known else kind.upper()


def normalize_tax_id(type_: str, value: str, *, index: int = 0) -> dict[str, Any]:
    kind = type_.strip().lower()
    raw = value.strip()
    if not raw:
        raise InvalidTaxId("a tax id needs a value", field=f"tax_ids[{index}].value")
    known = TAX_ID_TYPES.get(kind)
    if known is None:
        raise UnsupportedTaxIdType(
            f"tax id type {type_!r} is not supported; use one of {', '.join(TAX_ID_TYPES)}",
            field=f"tax_ids[{index}].type",
        )
    if known.checker is None:
        return _eu_vat(raw, index)
    checker = known.checker
    try:
        compact = str(checker.compact(raw))
        valid = bool(checker.is_valid(compact))
    except (ValidationError, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidTaxId(
            f"{raw!r} is not a valid {known.label} number (check digits or format)",
            field=f"tax_ids[{index}].value",
        )
    written = str(checker.format(compact)) if hasattr(checker, "format") else compact
    return {"type": kind, "value": written, "country": known.country, "verified": True}


def _eu_vat(raw: str, index: int) -> dict[str, Any]:
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
