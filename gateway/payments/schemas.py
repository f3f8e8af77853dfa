"""Request and response types of the payments API. Amounts are integer minor units of `currency`.
Credentials are write-only: no response type has a field for them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.payments.models import Payment as PaymentRow
from gateway.payments.models import PaymentMethod as PaymentMethodRow
from gateway.payments.models import PaymentProviderAccount as AccountRow
from gateway.payments.models import Refund as RefundRow
from gateway.payments.models import SetupSessionRecord

Ref = Annotated[str, Meta(min_length=1, max_length=200)]
PositiveAmount = Annotated[int, Meta(ge=1, le=100_000_000_000)]
Url = Annotated[str, Meta(min_length=1, max_length=2000, pattern=r"^https?://")]
CredentialKey = Annotated[str, Meta(min_length=1, max_length=40)]
CredentialValue = Annotated[str, Meta(min_length=1, max_length=2000)]


# -- requests -------------------------------------------------------------------------------------
class AccountCreate(Struct, forbid_unknown_fields=True):
    kind: Literal["sandbox", "stripe", "mollie"]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    # sandbox: base_url, api_key, webhook_secret · stripe: secret_key, webhook_secret · mollie: api_key
    credentials: Annotated[dict[CredentialKey, CredentialValue], Meta(max_length=10)]
    is_default: bool = False


class SetupSessionCreate(Struct, forbid_unknown_fields=True):
    return_url: Url
    method_types: Annotated[
        list[Literal["card", "sepa_debit", "ideal"]], Meta(min_length=1, max_length=3)
    ] = msgspec.field(default_factory=lambda: ["card"])


class PaymentMethodUpdate(Struct, forbid_unknown_fields=True):
    # 0 = the default; then the order in which methods are tried after it.
    priority: Annotated[int, Meta(ge=0, le=100)] | UnsetType = UNSET


class InvoicePay(Struct, forbid_unknown_fields=True):
    """Charge `payment_method` (else the customer's default), or record a payment made outside
    Tiergate (`paid_out_of_band`: a bank transfer, a cheque)."""

    payment_method: Ref | None = None
    paid_out_of_band: bool = False
    # The customer is present (a pay-now page): a 3-D Secure challenge may follow; sent back here after.
    off_session: bool = True
    return_url: Url | None = None


class RefundCreate(Struct, forbid_unknown_fields=True):
    """Refund `amount` (default: all that is still refundable) of a succeeded payment."""

    amount: PositiveAmount | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer", "order_change"] | None = None


# -- responses ----------------------------------------------------------------------------------
class Account(Struct):
    id: str
    object: Literal["payment_provider_account"]
    kind: str
    name: str
    is_default: bool
    created_at: datetime
    webhook_path: str

    @classmethod
    def of(cls, row: AccountRow) -> Account:
        return cls(
            row.id,
            "payment_provider_account",
            row.kind,
            row.name,
            row.is_default,
            row.created_at,
            f"/v1/payment_providers/{row.id}/webhooks",
        )


class AccountList(Struct):
    data: list[Account]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


class PaymentMethod(Struct):
    id: str
    object: Literal["payment_method"]
    customer: str
    account: str
    type: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    mandate_reference: str | None
    bank: str | None
    status: str
    priority: int
    is_default: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: PaymentMethodRow) -> PaymentMethod:
        return cls(
            row.id,
            "payment_method",
            row.tenant_id,
            row.account_id,
            row.type,
            row.brand,
            row.last4,
            row.exp_month,
            row.exp_year,
            row.mandate_reference,
            row.bank,
            row.status,
            row.priority,
            row.status == "active" and row.priority == 0,
            row.created_at,
            row.updated_at,
        )


class PaymentMethodList(Struct):
    data: list[PaymentMethod]
    has_more: bool = False
    next_cursor: str | None = None
    object: Literal["list"] = "list"


class SetupSession(Struct):
    id: str
    object: Literal["setup_session"]
    customer: str
    account: str
    url: str
    return_url: str
    status: str
    created_at: datetime

    @classmethod
    def of(cls, row: SetupSessionRecord) -> SetupSession:
        return cls(
            row.id,
            "setup_session",
            row.tenant_id,
            row.account_id,
            row.url,
            row.return_url,
            row.status,
            row.created_at,
        )


class Payment(Struct):
    id: str
    object: Literal["payment"]
    customer: str
    invoice: str | None
    attempt: int
    amount: int
    amount_refunded: int
    currency: str
    status: str
    payment_method: str | None
    account: str
    decline_code: str | None
    decline_message: str | None
    hard_decline: bool
    action_url: str | None
    off_session: bool
    created_at: datetime
    updated_at: datetime
    settled_at: datetime | None

    @classmethod
    def of(cls, row: PaymentRow) -> Payment:
        from gateway.payments.domain import is_hard_decline

        return cls(
            row.id,
            "payment",
            row.tenant_id,
            row.invoice_id,
            row.attempt,
            row.amount,
            row.amount_refunded,
            row.currency,
            row.status,
            row.method_id,
            row.account_id,
            row.decline_code,
            row.decline_message,
            is_hard_decline(row.decline_code),
            row.action_url,
            row.off_session,
            row.created_at,
            row.updated_at,
            row.settled_at,
        )


class PaymentList(Struct):
    data: list[Payment]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


class Refund(Struct):
    id: str
    object: Literal["refund"]
    customer: str
    payment: str
    amount: int
    currency: str
    status: str
    credit_note: str | None
    reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: RefundRow) -> Refund:
        return cls(
            row.id,
            "refund",
            row.tenant_id,
            row.payment_id,
            row.amount,
            row.currency,
            row.status,
            row.credit_note_id,
            row.reason,
            row.created_at,
        )


class WebhookAck(Struct):
    received: bool
    duplicate: bool
    # An event Tiergate does not use (a type it ignores, a payment still open): acknowledged, not stored.
    ignored: bool = False
