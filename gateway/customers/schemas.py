"""Request and response types of the customers API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.customers.models import Customer as CustomerRow
from gateway.customers.models import Membership, User
from gateway.web.schemas import Metadata

Name = Annotated[str, Meta(min_length=1, max_length=200)]
Email = Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]
Country = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
# "nl", "nl-NL", "nl_NL", "en-GB": stored normalised ("nl_NL"); the language must be one Tiergate speaks.
Locale = Annotated[str, Meta(min_length=2, max_length=16)]
Role = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z][a-z0-9_\-]*$")]


TaxExempt = Literal["none", "exempt", "reverse"]
Line = Annotated[str, Meta(max_length=200)]


class TaxId(Struct, forbid_unknown_fields=True):
    """Checked offline (python-stdnum: format and check digits) and stored in a canonical form; `eu_vat`
    compact under its prefix. The types are Stripe's names (gateway/customers/taxids.py)."""

    type: Annotated[
        str,
        Meta(
            min_length=2,
            max_length=20,
            description="eu_vat, gb_vat, ch_vat, no_vat, is_vat, au_abn, nz_gst, ca_bn, us_ein, in_gst, "
            "br_cnpj, jp_cn, kr_brn, mx_rfc, sg_uen or tr_tin",
        ),
    ]
    value: Annotated[str, Meta(min_length=1, max_length=40)]


class Address(Struct, forbid_unknown_fields=True):
    """The billing address (the country is the customer's `country`). `region`: state or province, as an
    ISO 3166-2 subdivision code ("CA" or "US-CA"); tax rates are looked up by it."""

    line1: Line | None = None
    line2: Line | None = None
    city: Annotated[str, Meta(max_length=100)] | None = None
    postal_code: Annotated[str, Meta(max_length=20)] | None = None
    region: Annotated[str, Meta(max_length=6)] | None = None


class CustomerCreate(Struct, forbid_unknown_fields=True):
    name: Name
    email: Email | None = None
    currency: Currency | None = None
    country: Country | None = None
    tax_ids: Annotated[list[TaxId], Meta(max_length=10)] = msgspec.field(default_factory=list)
    address: Address | None = None
    tax_exempt: TaxExempt = "none"
    default_role: Role = "viewer"
    preferred_locale: Locale | None = None
    test_clock: Annotated[str, Meta(max_length=40)] | None = None
    metadata: Metadata | None = None


class CustomerUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    email: Email | UnsetType | None = UNSET
    currency: Currency | UnsetType | None = UNSET
    country: Country | UnsetType | None = UNSET
    tax_ids: Annotated[list[TaxId], Meta(max_length=10)] | UnsetType = UNSET
    # Replaces the whole address; null clears it.
    address: Address | UnsetType | None = UNSET
    tax_exempt: TaxExempt | UnsetType = UNSET
    default_role: Role | UnsetType = UNSET
    preferred_locale: Locale | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET


class Customer(Struct):
    id: str
    object: Literal["customer"]
    name: str
    email: str | None
    currency: str | None
    country: str | None
    tax_ids: list[dict[str, Any]]
    address: Address | None
    tax_exempt: str
    default_role: str
    test_clock: str | None
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    preferred_locale: str | None = None

    @classmethod
    def of(cls, row: CustomerRow) -> Customer:
        return cls(
            row.id,
            "customer",
            row.name,
            row.email,
            row.currency,
            row.country,
            list(row.tax_ids),
            address_of(row),
            row.tax_exempt or "none",
            row.default_role,
            row.test_clock_id,
            row.metadata_,
            row.created_at,
            row.updated_at,
            row.preferred_locale,
        )


def address_of(row: CustomerRow) -> Address | None:
    address = Address(
        row.address_line1, row.address_line2, row.address_city, row.address_postal_code, row.address_region
    )
    return None if all(v is None for v in msgspec.structs.astuple(address)) else address


class CustomerList(Struct):
    data: list[Customer]
    has_more: bool
    next_cursor: str | None


class MemberCreate(Struct, forbid_unknown_fields=True):
    email: Email
    name: Name | None = None
    role: Role | None = None


class MemberUpdate(Struct, forbid_unknown_fields=True):
    role: Role


class Member(Struct):
    id: str
    object: Literal["member"]
    customer: str
    user: str
    email: str
    name: str | None
    role: str
    status: str
    created_at: datetime
    removed_at: datetime | None

    @classmethod
    def of(cls, membership: Membership, user: User) -> Member:
        return cls(
            membership.id,
            "member",
            membership.tenant_id,
            user.id,
            user.email,
            user.name,
            membership.role,
            membership.status,
            membership.created_at,
            membership.removed_at,
        )


class MemberList(Struct):
    data: list[Member]
    has_more: bool
    next_cursor: str | None


def plain_changes(changes: dict[str, Any]) -> dict[str, Any]:
    if "tax_ids" in changes:
        changes["tax_ids"] = [msgspec.structs.asdict(t) for t in changes["tax_ids"]]
    if "address" in changes and changes["address"] is not None:
        changes["address"] = msgspec.structs.asdict(changes["address"])
    return changes
