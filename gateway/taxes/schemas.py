"""Request and response types of the tax-rates API. Percentages are decimal strings, never floats."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.taxes.models import TaxRate as TaxRateRow

DisplayName = Annotated[str, Meta(min_length=1, max_length=100)]
Country = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
Region = Annotated[str, Meta(min_length=1, max_length=6, pattern=r"^([A-Za-z]{2}-)?[A-Za-z0-9]{1,3}$")]
Percent = Annotated[
    str, Meta(max_length=7, pattern=r"^\d{1,2}(\.\d{1,4})?$", description="0 ≤ p < 100, up to 4 decimals")
]
TaxType = Literal["vat", "gst", "hst", "pst", "qst", "sales_tax", "jct", "igst", "cgst", "sgst", "other"]


class TaxRateCreate(Struct, forbid_unknown_fields=True):
    display_name: DisplayName
    country: Country
    percent: Percent
    inclusive: bool = False
    tax_type: TaxType = "vat"
    region: Region | None = None
    active: bool = True


class TaxRateUpdate(Struct, forbid_unknown_fields=True):
    """Only these change: a rate's percentage is what issued invoices were taxed at (create a new one)."""

    display_name: DisplayName | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class TaxRate(Struct):
    id: str
    object: Literal["tax_rate"]
    display_name: str
    country: str
    region: str | None
    jurisdiction: str
    percent: str
    inclusive: bool
    tax_type: str
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, row: TaxRateRow) -> TaxRate:
        return cls(
            row.id,
            "tax_rate",
            row.display_name,
            row.country,
            row.region,
            f"{row.country}-{row.region}" if row.region else row.country,
            row.percent,
            row.inclusive,
            row.tax_type,
            row.active,
            row.created_at,
        )


class TaxRateList(Struct):
    data: list[TaxRate]
    has_more: bool
    next_cursor: str | None
