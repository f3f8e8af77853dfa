"""The Stripe adapter: the official `stripe` library (v16) over httpx, translated onto the port.

- Customers, Checkout Sessions in `setup` mode (the setup session), PaymentMethods retrieve/detach,
  off-session PaymentIntents (`confirm=True, off_session=True`), refunds, webhook verification.
- Every creating call passes the port's `idempotency_key` as Stripe's `Idempotency-Key`: Stripe replays the
  first answer for the same key (a 402 decline included), so a retried charge finds the first PaymentIntent.
- The client never retries by itself (`max_network_retries=0`): a timeout is `ProviderUnavailable` at once,
  and reconciliation asks again with the same key. A request path never waits three timeouts.
- Versions (`ChargeResult.version`): Stripe objects carry no revision counter, so a state's version is
  Stripe's clock when it was observed (the event's `created` for webhooks, the response's `Date` header for
  API answers) in seconds × 10 plus the state's rank in the payment's life, so within one second the later
  state wins and an older, late webhook never overwrites a newer answer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

import stripe

from gateway.payments.port import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    DeclineCode,
    InvalidWebhookSignature,
    MethodDetails,
    MethodType,
    PaymentProvider,
    ProviderEvent,
    ProviderEventType,
    ProviderKind,
    ProviderRejected,
    ProviderUnavailable,
    RefundRequest,
    RefundResult,
    RefundStatus,
    SetupSession,
)

# Stripe's settlement currencies (docs: "Supported currencies"), upper case like the rest of Tiergate.
SUPPORTED_CURRENCIES: frozenset[str] = frozenset(
    """
    USD AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BIF BMD BND BOB BRL BSD BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GNF GTQ
    GYD HKD HNL HTG HUF IDR ILS INR ISK JMD JPY KES KGS KHR KMF KRW KYD KZT LAK LBP LKR LRD LSL MAD
    MDL MGA MKD MMK MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TOP TRY TTD TWD TZS
    UAH UGX UYU UZS VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW
    """.split()
)

# Stripe's decline codes (docs: "Decline codes") onto the port's. Unlisted: a generic (soft) decline.
DECLINE_CODES: Mapping[str, DeclineCode] = {
    "insufficient_funds": DeclineCode.INSUFFICIENT_FUNDS,
    "card_velocity_exceeded": DeclineCode.INSUFFICIENT_FUNDS,
    "withdrawal_count_limit_exceeded": DeclineCode.INSUFFICIENT_FUNDS,
    "processing_error": DeclineCode.PROCESSING_ERROR,
    "reenter_transaction": DeclineCode.PROCESSING_ERROR,
    "try_again_later": DeclineCode.TRY_AGAIN_LATER,
    "issuer_not_available": DeclineCode.TRY_AGAIN_LATER,
    "approve_with_id": DeclineCode.TRY_AGAIN_LATER,
    "generic_decline": DeclineCode.GENERIC_DECLINE,
    "card_declined": DeclineCode.GENERIC_DECLINE,
    "authentication_required": DeclineCode.AUTHENTICATION_REQUIRED,
    "lost_card": DeclineCode.LOST_CARD,
    "pickup_card": DeclineCode.LOST_CARD,
    "stolen_card": DeclineCode.STOLEN_CARD,
    "do_not_honor": DeclineCode.DO_NOT_HONOR,
    "do_not_try_again": DeclineCode.DO_NOT_HONOR,
    "restricted_card": DeclineCode.DO_NOT_HONOR,
    "revocation_of_authorization": DeclineCode.DO_NOT_HONOR,
    "revocation_of_all_authorizations": DeclineCode.DO_NOT_HONOR,
    "stop_payment_order": DeclineCode.DO_NOT_HONOR,
    "security_violation": DeclineCode.DO_NOT_HONOR,
    "fraudulent": DeclineCode.FRAUDULENT,
    "merchant_blacklist": DeclineCode.FRAUDULENT,
    "invalid_account": DeclineCode.INVALID_ACCOUNT,
    "incorrect_number": DeclineCode.INVALID_ACCOUNT,
    "invalid_number": DeclineCode.INVALID_ACCOUNT,
    "card_not_supported": DeclineCode.INVALID_ACCOUNT,
    "new_account_information_available": DeclineCode.INVALID_ACCOUNT,
    "expired_card": DeclineCode.EXPIRED_CARD,
}

# PaymentIntent statuses (docs: "PaymentIntent lifecycle"). `requires_payment_method` after a confirm is a
# failed attempt (its `last_payment_error` says why); we always confirm, so it never means "not started".
PAYMENT_STATUSES: Mapping[str, ChargeStatus] = {
    "succeeded": ChargeStatus.SUCCEEDED,
    "processing": ChargeStatus.PROCESSING,
    "requires_capture": ChargeStatus.PROCESSING,
    "requires_confirmation": ChargeStatus.PROCESSING,
    "requires_action": ChargeStatus.REQUIRES_ACTION,
    "requires_payment_method": ChargeStatus.FAILED,
    "canceled": ChargeStatus.CANCELED,
}

# A state's place in a payment's life: the tie-breaker inside one second (see the module docstring).
_RANK: Mapping[ChargeStatus, int] = {
    ChargeStatus.REQUIRES_ACTION: 1,
    ChargeStatus.PROCESSING: 2,
    ChargeStatus.FAILED: 3,
    ChargeStatus.CANCELED: 4,
    ChargeStatus.SUCCEEDED: 5,
}
_CHARGED_BACK_RANK = 6

REFUND_STATUSES: Mapping[str, RefundStatus] = {
    "succeeded": RefundStatus.SUCCEEDED,
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.FAILED,
}

METHOD_TYPES: Mapping[MethodType, str] = {
    MethodType.CARD: "card",
    MethodType.SEPA_DEBIT: "sepa_debit",
    MethodType.IDEAL: "ideal",  # Stripe saves an iDEAL setup as a `sepa_debit` method
}

# Stripe's own refund reasons; anything else travels in metadata.
_REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})


def _version(observed_at: int, rank: int) -> int:
    return observed_at * 10 + rank


def _date_header(headers: Mapping[str, str] | None) -> int | None:
    """Stripe's clock at the moment it answered (seconds), from the HTTP `Date` header."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "date":
            try:
                return int(parsedate_to_datetime(value).timestamp())
            except (TypeError, ValueError):
                return None
    return None


def _expandable_id(value: Any) -> str | None:
    """Stripe fields that are an id, or the object itself when expanded."""
    if isinstance(value, dict):
        return str(value["id"])
    return str(value) if value else None


def decline_code(error: Mapping[str, Any] | None) -> DeclineCode:
    """The normalised code of a Stripe error object (`last_payment_error` or a 402 body's `error`)."""
    if not error:
        return DeclineCode.GENERIC_DECLINE
    for key in ("decline_code", "code"):
        code = error.get(key)
        if code and code in DECLINE_CODES and code != "card_declined":
            return DECLINE_CODES[code]
    return DeclineCode.GENERIC_DECLINE


def charge_result(intent: Mapping[str, Any], *, observed_at: int | None) -> ChargeResult:
    """A PaymentIntent (a dict in Stripe's API shape) as the port's normalised answer."""
    status = PAYMENT_STATUSES.get(str(intent["status"]), ChargeStatus.PROCESSING)
    error = intent.get("last_payment_error")
    code = decline_code(error) if status is ChargeStatus.FAILED else None
    action_url = None
    if status is ChargeStatus.REQUIRES_ACTION:
        next_action = intent.get("next_action") or {}
        redirect = next_action.get("redirect_to_url") or {}
        action_url = redirect.get("url")
    return ChargeResult(
        status=status,
        provider_payment_id=str(intent["id"]),
        amount=int(intent["amount"]),
        currency=str(intent["currency"]).upper(),
        decline_code=code,
        decline_message=(error or {}).get("message") if code else None,
        action_url=action_url,
        provider_method_id=_expandable_id(intent.get("payment_method")),
        version=_version(observed_at or int(intent["created"]), _RANK[status]),
    )


def method_details(method: Mapping[str, Any]) -> MethodDetails:
    """A PaymentMethod (or a legacy Card source) as display data and a token."""
    if method.get("object") == "card":  # a legacy source, as in `customer.source.expiring`
        return MethodDetails(
            provider_method_id=str(method["id"]),
            type=MethodType.CARD,
            brand=str(method.get("brand") or "").lower().replace(" ", "_") or None,
            last4=method.get("last4"),
            exp_month=method.get("exp_month"),
            exp_year=method.get("exp_year"),
            fingerprint=method.get("fingerprint"),
        )
    kind = method.get("type")
    if kind == "card":
        card = method.get("card") or {}
        return MethodDetails(
            provider_method_id=str(method["id"]),
            type=MethodType.CARD,
            brand=card.get("brand"),
            last4=card.get("last4"),
            exp_month=card.get("exp_month"),
            exp_year=card.get("exp_year"),
            fingerprint=card.get("fingerprint"),
        )
    if kind == "sepa_debit":
        sepa = method.get("sepa_debit") or {}
        generated = sepa.get("generated_from") or {}
        return MethodDetails(
            provider_method_id=str(method["id"]),
            # a SEPA mandate that an iDEAL payment set up is still an iDEAL customer's method
            type=MethodType.IDEAL if generated.get("setup_attempt") else MethodType.SEPA_DEBIT,
            last4=sepa.get("last4"),
            bank=sepa.get("bank_code"),
            fingerprint=sepa.get("fingerprint"),
        )
    if kind == "ideal":
        ideal = method.get("ideal") or {}
        return MethodDetails(
            provider_method_id=str(method["id"]), type=MethodType.IDEAL, bank=ideal.get("bank")
        )
    raise ProviderRejected(
        f"Stripe payment method type {kind!r} is not supported", code="method_not_supported"
    )


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    return RefundResult(
        provider_refund_id=str(refund["id"]),
        status=REFUND_STATUSES.get(str(refund.get("status")), RefundStatus.PENDING),
        amount=int(refund["amount"]),
        currency=str(refund["currency"]).upper(),
    )


def rejected(error: stripe.StripeError) -> ProviderRejected:
    """A refused request (4xx other than a decline) with a stable, normalised code."""
    body = error.json_body.get("error", {}) if isinstance(error.json_body, dict) else {}
    code = str(body.get("code") or "")
    param = str(body.get("param") or "")
    message = str(body.get("message") or error.user_message or "rejected by Stripe")
    if param == "currency" or code == "currency_not_supported" or "Invalid currency" in message:
        return ProviderRejected(message, code="currency_not_supported")
    if code == "resource_missing" and "payment_method" in param:
        return ProviderRejected(message, code="payment_method_not_found")
    if code == "resource_missing" and param in {"customer", "id"} and "customer" in message.lower():
        return ProviderRejected(message, code="customer_not_found")
    if code == "resource_missing":
        return ProviderRejected(message, code="not_found")
    if code == "charge_already_refunded":
        return ProviderRejected(message, code="amount_exceeds_refundable")
    if code == "amount_too_large":  # on a refund: above what is left (see `refund`)
        return ProviderRejected(message, code="amount_too_large")
    if code == "amount_too_small":
        return ProviderRejected(message, code="amount_too_small")
    if isinstance(error, stripe.IdempotencyError):
        return ProviderRejected(message, code="idempotency_key_reused")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return ProviderRejected(message, code="provider_credentials_invalid")
    return ProviderRejected(message, code=code or "invalid_request")


class StripeProvider:
    """One Stripe account (its secret key and webhook signing secret)."""

    kind = ProviderKind.STRIPE

    def __init__(self, credentials: Mapping[str, str], *, timeout_seconds: float = 10.0) -> None:
        self._webhook_secret = credentials.get("webhook_secret", "")
        self._client = stripe.StripeClient(
            credentials["secret_key"],
            http_client=stripe.HTTPXClient(timeout=timeout_seconds),
            max_network_retries=0,
        )

    def supports_currency(self, currency: str) -> bool:
        return currency.upper() in SUPPORTED_CURRENCIES

    # --- calls -------------------------------------------------------------------------------------------

    async def _call(self, call: Any, *args: Any, declines_are_answers: bool = False, **kwargs: Any) -> Any:
        """Run one SDK call; map its errors onto the port's. A 402 decline is an answer for `charge`
        (`declines_are_answers`), a refusal anywhere else."""
        try:
            return await call(*args, **kwargs)
        except stripe.CardError as error:
            if declines_are_answers:
                raise
            body = error.json_body.get("error", {}) if isinstance(error.json_body, dict) else {}
            raise ProviderRejected(
                str(body.get("message") or error), code=decline_code(body).value
            ) from error
        except (stripe.APIConnectionError, stripe.RateLimitError) as error:
            raise ProviderUnavailable(f"Stripe did not answer: {error.user_message or error}") from error
        except stripe.APIError as error:  # 5xx: the outcome is unknown
            raise ProviderUnavailable(f"Stripe failed: {error.user_message or error}") from error
        except stripe.StripeError as error:
            if error.http_status is not None and error.http_status >= 500:
                raise ProviderUnavailable(f"Stripe failed: {error}") from error
            raise rejected(error) from error

    async def create_customer(
        self, *, customer_id: str, name: str, email: str | None, idempotency_key: str
    ) -> str:
        params: dict[str, Any] = {"name": name, "metadata": {"tiergate_customer_id": customer_id}}
        if email:
            params["email"] = email
        customer = await self._call(
            self._client.v1.customers.create_async, params, {"idempotency_key": idempotency_key}
        )
        return str(customer.id)

    async def create_setup_session(
        self,
        *,
        provider_customer_id: str,
        return_url: str,
        method_types: tuple[MethodType, ...],
        idempotency_key: str,
        currency: str | None = None,
        at: datetime | None = None,
        clock_ref: str | None = None,
    ) -> SetupSession:
        # Checkout in setup mode: Stripe hosts the page; the method arrives by `checkout.session.completed`.
        params: dict[str, Any] = {
            "mode": "setup",
            "customer": provider_customer_id,
            "success_url": return_url,
            "cancel_url": return_url,
            "payment_method_types": sorted({METHOD_TYPES[kind] for kind in method_types} or {"card"}),
        }
        if currency:
            params["currency"] = currency.lower()
        created = await self._call(
            self._client.v1.checkout.sessions.create_async, params, {"idempotency_key": idempotency_key}
        )
        session = created.to_dict()
        expires = session.get("expires_at")
        return SetupSession(
            provider_session_id=str(session["id"]),
            url=str(session["url"]),
            expires_at=datetime.fromtimestamp(int(expires), UTC) if expires else None,
        )

    async def get_method(self, provider_method_id: str) -> MethodDetails:
        method = await self._call(self._client.v1.payment_methods.retrieve_async, provider_method_id)
        return method_details(method.to_dict())

    async def detach_method(self, provider_method_id: str) -> None:
        await self._call(self._client.v1.payment_methods.detach_async, provider_method_id)

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "customer": request.provider_customer_id,
            "payment_method": request.provider_method_id,
            "description": request.description,
            "metadata": dict(request.metadata),
            "confirm": True,
        }
        if request.off_session:
            params["off_session"] = True
        if request.return_url:
            params["return_url"] = request.return_url
        else:
            # No page to come back to: a method that needs a redirect fails instead of waiting for one.
            params["automatic_payment_methods"] = {"enabled": True, "allow_redirects": "never"}
        try:
            intent = await self._call(
                self._client.v1.payment_intents.create_async,
                params,
                {"idempotency_key": request.idempotency_key},
                declines_are_answers=True,
            )
        except stripe.CardError as error:
            # A decline is an answer (402): its body carries the failed PaymentIntent.
            body = error.json_body.get("error", {}) if isinstance(error.json_body, dict) else {}
            failed = body.get("payment_intent")
            if not failed:
                raise ProviderRejected(
                    str(body.get("message") or error), code=decline_code(body).value
                ) from error
            observed = _date_header(error.headers)
            result = charge_result(failed, observed_at=observed)
            if result.status is ChargeStatus.FAILED:
                # the 402's own code is the freshest reason (the intent's copy may lag on replays)
                code = decline_code(body)
                result = ChargeResult(
                    status=result.status,
                    provider_payment_id=result.provider_payment_id,
                    amount=result.amount,
                    currency=result.currency,
                    decline_code=code,
                    decline_message=str(body.get("message") or ""),
                    action_url=None,
                    provider_method_id=result.provider_method_id,
                    version=result.version,
                )
            return result
        return self._charge_result(intent)

    async def retrieve_payment(self, provider_payment_id: str) -> ChargeResult:
        intent = await self._call(self._client.v1.payment_intents.retrieve_async, provider_payment_id)
        return self._charge_result(intent)

    def _charge_result(self, intent: Any) -> ChargeResult:
        response = intent.last_response
        return charge_result(
            intent.to_dict(), observed_at=_date_header(response.headers if response else None)
        )

    async def refund(self, request: RefundRequest) -> RefundResult:
        params: dict[str, Any] = {"payment_intent": request.provider_payment_id, "amount": request.amount}
        if request.reason in _REFUND_REASONS:
            params["reason"] = request.reason
        elif request.reason:
            params["metadata"] = {"reason": request.reason}
        try:
            refund = await self._call(
                self._client.v1.refunds.create_async, params, {"idempotency_key": request.idempotency_key}
            )
        except ProviderRejected as error:
            if error.code == "amount_too_large":  # "Refund amount (…) is greater than unrefunded amount"
                raise ProviderRejected(str(error), code="amount_exceeds_refundable") from error
            raise
        return refund_result(refund.to_dict())

    async def retrieve_refund(self, provider_payment_id: str, provider_refund_id: str) -> RefundResult:
        refund = await self._call(self._client.v1.refunds.retrieve_async, provider_refund_id)
        return refund_result(refund.to_dict())

    # --- webhooks ----------------------------------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        signature = next((v for k, v in headers.items() if k.lower() == "stripe-signature"), None)
        try:
            # Stripe's own scheme: `t=<unix>,v1=<HMAC-SHA256(secret, "<t>.<body>")>`, 5 minutes' tolerance.
            self._client.construct_event(body, signature, self._webhook_secret)
        except (stripe.SignatureVerificationError, ValueError) as error:
            raise InvalidWebhookSignature(str(error)) from error
        return translate_event(json.loads(body))

    async def complete_event(self, event: ProviderEvent) -> ProviderEvent:
        """Checkout's `completed` event names a SetupIntent, not the method: fetch the method it saved."""
        method = event.method
        if event.type is ProviderEventType.METHOD_ATTACHED and method is not None and method.last4 is None:
            if method.provider_method_id.startswith("seti_"):
                intent = await self._call(
                    self._client.v1.setup_intents.retrieve_async, method.provider_method_id
                )
                method_id = _expandable_id(intent.to_dict().get("payment_method"))
                if method_id is None:
                    raise ProviderRejected(
                        "the setup saved no payment method", code="payment_method_not_found"
                    )
            else:
                method_id = method.provider_method_id
            return _replace_method(event, await self.get_method(method_id))
        return event

    async def advance_clock(self, clock_ref: str, to: datetime) -> None:
        """Stripe's test clocks are driven from Stripe's dashboard/API for Stripe's own billing; Tiergate's
        clock does not move Stripe: nothing to do."""


def _replace_method(event: ProviderEvent, method: MethodDetails) -> ProviderEvent:
    return ProviderEvent(
        provider_event_id=event.provider_event_id,
        type=event.type,
        occurred_at=event.occurred_at,
        provider_customer_id=event.provider_customer_id,
        payment=event.payment,
        refund=event.refund,
        method=method,
        setup_session_id=event.setup_session_id,
    )


_PAYMENT_EVENTS: Mapping[str, ProviderEventType] = {
    "payment_intent.succeeded": ProviderEventType.PAYMENT_SUCCEEDED,
    "payment_intent.payment_failed": ProviderEventType.PAYMENT_FAILED,
    "payment_intent.requires_action": ProviderEventType.PAYMENT_REQUIRES_ACTION,
    "payment_intent.canceled": ProviderEventType.PAYMENT_CANCELED,
}
_METHOD_EVENTS: Mapping[str, ProviderEventType] = {
    "payment_method.updated": ProviderEventType.METHOD_UPDATED,
    "payment_method.automatically_updated": ProviderEventType.METHOD_UPDATED,
    "payment_method.detached": ProviderEventType.METHOD_DETACHED,
    "customer.source.expiring": ProviderEventType.METHOD_EXPIRING,
    "payment_method.card_automatically_updated": ProviderEventType.METHOD_UPDATED,
}
SUPPORTED_EVENTS: frozenset[str] = frozenset(
    {
        *_PAYMENT_EVENTS,
        *_METHOD_EVENTS,
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
        "setup_intent.succeeded",
        "checkout.session.completed",
    }
)


def translate_event(event: Mapping[str, Any]) -> ProviderEvent:
    """A Stripe event (verified, as JSON) in the port's vocabulary. An event type Tiergate does not use
    raises ProviderRejected(code="event_not_supported"): acknowledge it and drop it."""
    kind = str(event["type"])
    obj: Mapping[str, Any] = event["data"]["object"]
    created = int(event["created"])
    base: dict[str, Any] = {
        "provider_event_id": str(event["id"]),
        "occurred_at": datetime.fromtimestamp(created, UTC),
        "provider_customer_id": _expandable_id(obj.get("customer")),
    }
    if kind in _PAYMENT_EVENTS:
        return ProviderEvent(
            type=_PAYMENT_EVENTS[kind], payment=charge_result(obj, observed_at=created), **base
        )
    if kind in _METHOD_EVENTS:
        return ProviderEvent(type=_METHOD_EVENTS[kind], method=method_details(obj), **base)
    if kind == "charge.dispute.created":
        payment = ChargeResult(
            status=ChargeStatus.SUCCEEDED,  # it had settled; the event type says it was reversed
            provider_payment_id=str(
                _expandable_id(obj.get("payment_intent")) or _expandable_id(obj["charge"])
            ),
            amount=int(obj["amount"]),
            currency=str(obj["currency"]).upper(),
            version=_version(created, _CHARGED_BACK_RANK),
        )
        return ProviderEvent(type=ProviderEventType.PAYMENT_CHARGED_BACK, payment=payment, **base)
    if kind in {"refund.created", "refund.updated", "refund.failed"}:
        refund = refund_result(obj)
        if refund.status is RefundStatus.PENDING:
            raise ProviderRejected(
                f"{kind} with a pending refund changes nothing", code="event_not_supported"
            )
        event_type = (
            ProviderEventType.REFUND_SUCCEEDED
            if refund.status is RefundStatus.SUCCEEDED
            else ProviderEventType.REFUND_FAILED
        )
        return ProviderEvent(type=event_type, refund=refund, **base)
    if kind == "charge.refunded":
        refunds = (obj.get("refunds") or {}).get("data") or []
        if not refunds:
            raise ProviderRejected(
                "charge.refunded without its refunds: use refund.updated", code="event_not_supported"
            )
        latest = max(refunds, key=lambda item: int(item.get("created") or 0))
        return ProviderEvent(type=ProviderEventType.REFUND_SUCCEEDED, refund=refund_result(latest), **base)
    if kind == "setup_intent.succeeded":
        method_id = _expandable_id(obj.get("payment_method"))
        method = (
            method_details(obj["payment_method"])
            if isinstance(obj.get("payment_method"), dict)
            else MethodDetails(provider_method_id=str(method_id), type=_first_type(obj))
        )
        return ProviderEvent(type=ProviderEventType.METHOD_ATTACHED, method=method, **base)
    if kind == "checkout.session.completed" and obj.get("mode") == "setup":
        # the session names its SetupIntent; `complete_event` fetches the method it saved
        setup_intent = str(_expandable_id(obj.get("setup_intent")))
        return ProviderEvent(
            type=ProviderEventType.METHOD_ATTACHED,
            method=MethodDetails(provider_method_id=setup_intent, type=_first_type(obj)),
            setup_session_id=str(obj["id"]),
            **base,
        )
    raise ProviderRejected(f"Stripe event {kind!r} is not used by Tiergate", code="event_not_supported")


def _first_type(obj: Mapping[str, Any]) -> MethodType:
    kinds = obj.get("payment_method_types") or ["card"]
    for kind, name in METHOD_TYPES.items():
        if name == kinds[0]:
            return kind
    return MethodType.CARD


if TYPE_CHECKING:  # mypy proves the adapter implements the whole port
    _IMPLEMENTS_THE_PORT: type[PaymentProvider] = StripeProvider
