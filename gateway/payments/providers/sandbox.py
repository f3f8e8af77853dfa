"""The sandbox adapter: Tiergate's `PaymentProvider` over the sandbox's HTTP API (gateway/sandbox/README.md).

It speaks to the sandbox as to any remote provider, over httpx, never by importing it: the sandbox may run
in another process (`tiergate sandbox`) or be mounted under `/sandbox` of this one, and the adapter cannot
tell. Errors are translated at this edge:
- a timeout, a connection error or a 5xx → `ProviderUnavailable` (the outcome is unknown: ask again with
  the same idempotency key);
- any other 4xx → `ProviderRejected` with the sandbox's error code (`currency_not_supported`,
  `payment_method_not_found`, `amount_exceeds_refundable`, ...); nothing was charged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import httpx

from gateway.kernel.clock import format_timestamp
from gateway.payments.port import (
    ChargeRequest,
    ChargeResult,
    ChargeStatus,
    DeclineCode,
    InvalidWebhookSignature,
    MethodDetails,
    MethodType,
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

CURRENCIES = frozenset({"EUR", "USD", "GBP"})
SIGNATURE_HEADER = "sandbox-signature"
# A signature older (or newer) than this, by the wall clock, is refused: a captured webhook cannot be
# replayed later. The sandbox signs each attempt with the wall time of sending, whatever test clock the
# event itself is on, so test clocks never trip this.
SIGNATURE_TOLERANCE_SECONDS = 300


def _decline(code: str | None) -> DeclineCode | None:
    if code is None:
        return None
    try:
        return DeclineCode(code)
    except ValueError:
        return DeclineCode.GENERIC_DECLINE


def charge_result(payment: Mapping[str, Any]) -> ChargeResult:
    return ChargeResult(
        status=ChargeStatus(payment["status"]),
        provider_payment_id=payment["id"],
        amount=payment["amount"],
        currency=payment["currency"],
        decline_code=_decline(payment.get("decline_code")),
        decline_message=payment.get("decline_message"),
        action_url=payment.get("action_url"),
        provider_method_id=payment.get("payment_method"),
        version=int(payment.get("version", 0)),
    )


def method_details(method: Mapping[str, Any]) -> MethodDetails:
    return MethodDetails(
        provider_method_id=method["id"],
        type=MethodType(method["type"]),
        brand=method.get("brand"),
        last4=method.get("last4"),
        exp_month=method.get("exp_month"),
        exp_year=method.get("exp_year"),
        mandate_reference=method.get("mandate_reference"),
        bank=method.get("bank"),
        fingerprint=method.get("fingerprint"),
    )


def refund_result(refund: Mapping[str, Any]) -> RefundResult:
    return RefundResult(
        provider_refund_id=refund["id"],
        status=RefundStatus(refund["status"]),
        amount=refund["amount"],
        currency=refund["currency"],
    )


def verify_signature(
    secret: str, body: bytes, header: str, *, now: float, tolerance: float = SIGNATURE_TOLERANCE_SECONDS
) -> None:
    """`Sandbox-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (several v1 allowed)."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidWebhookSignature("malformed Sandbox-Signature header")
    if abs(now - timestamp) > tolerance:
        raise InvalidWebhookSignature("webhook timestamp outside the tolerance window")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise InvalidWebhookSignature("webhook signature does not match")


def _iso(at: datetime | None) -> str | None:
    return format_timestamp(at) if at is not None else None


class SandboxProvider:
    kind = ProviderKind.SANDBOX

    def __init__(
        self,
        credentials: dict[str, str],
        *,
        timeout_seconds: float = 10.0,
        wall_time: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            self.base_url = credentials["base_url"].rstrip("/")
            self._api_key = credentials["api_key"]
        except KeyError as missing:
            raise ValueError(f"sandbox credentials need {missing}") from None
        self._webhook_secret = credentials.get("webhook_secret", "")
        self.timeout_seconds = timeout_seconds
        self._wall_time = wall_time  # replay window of webhook signatures (transport time, not domain)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def _http(self) -> httpx.AsyncClient:
        """One keep-alive client per event loop: building a client costs more than a sandbox call, and
        an adapter may outlive the loop it was first used in (connections belong to a loop)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop or self._client.is_closed:
            # Connecting gets at least 5 s: nothing was sent yet, so waiting longer risks nothing, while a
            # loaded host can take a while to accept; an answer is awaited `timeout_seconds` (then unknown).
            timeout = httpx.Timeout(self.timeout_seconds, connect=max(self.timeout_seconds, 5.0))
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=timeout, transport=self._transport
            )
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._client_loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = None

    def supports_currency(self, currency: str) -> bool:
        return currency.upper() in CURRENCIES

    # --- HTTP -------------------------------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._api_key}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self._http().request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken responses
            raise ProviderUnavailable(f"sandbox {method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailable(f"sandbox {method} {path}: HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"sandbox {method} {path}: an answer that is not JSON") from exc
        if response.status_code >= 400:
            error = document.get("error", {}) if isinstance(document, dict) else {}
            raise ProviderRejected(
                str(error.get("message") or f"HTTP {response.status_code}"),
                code=str(error.get("code") or "invalid_request"),
            )
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"sandbox {method} {path}: unexpected answer")
        return document

    # --- the port ---------------------------------------------------------------------------------------
    async def create_customer(
        self, *, customer_id: str, name: str, email: str | None, idempotency_key: str
    ) -> str:
        customer = await self._call(
            "POST",
            "/v1/customers",
            body={"name": name[:500], "email": email, "metadata": {"tiergate_customer": customer_id}},
            idempotency_key=idempotency_key,
        )
        return str(customer["id"])

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
        session = await self._call(
            "POST",
            "/v1/setup_sessions",
            body={
                "customer": provider_customer_id,
                "return_url": return_url,
                "method_types": [str(t) for t in method_types],
                "currency": currency,
                "clock_ref": clock_ref,
                "at": _iso(at),
            },
            idempotency_key=idempotency_key,
        )
        return SetupSession(
            provider_session_id=session["id"],
            url=session["url"],
            expires_at=datetime.fromisoformat(session["expires_at"]) if session.get("expires_at") else None,
        )

    async def get_method(self, provider_method_id: str) -> MethodDetails:
        return method_details(await self._call("GET", f"/v1/payment_methods/{provider_method_id}"))

    async def detach_method(self, provider_method_id: str) -> None:
        await self._call("POST", f"/v1/payment_methods/{provider_method_id}/detach")

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        payment = await self._call(
            "POST",
            "/v1/payments",
            body={
                "customer": request.provider_customer_id,
                "payment_method": request.provider_method_id,
                "amount": request.amount,
                "currency": request.currency,
                "description": request.description[:500],
                "metadata": dict(request.metadata),
                "off_session": request.off_session,
                "return_url": request.return_url,
                "clock_ref": request.clock_ref,
                "at": _iso(request.at),
            },
            idempotency_key=request.idempotency_key,
        )
        return charge_result(payment)

    async def retrieve_payment(self, provider_payment_id: str) -> ChargeResult:
        return charge_result(await self._call("GET", f"/v1/payments/{provider_payment_id}"))

    async def refund(self, request: RefundRequest) -> RefundResult:
        refund = await self._call(
            "POST",
            "/v1/refunds",
            body={"payment": request.provider_payment_id, "amount": request.amount, "reason": request.reason},
            idempotency_key=request.idempotency_key,
        )
        if refund["currency"] != request.currency.upper():
            raise ProviderRejected("the refund's currency is not the payment's", code="currency_mismatch")
        return refund_result(refund)

    async def retrieve_refund(self, provider_payment_id: str, provider_refund_id: str) -> RefundResult:
        return refund_result(await self._call("GET", f"/v1/refunds/{provider_refund_id}"))

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER), None)
        if header is None:
            raise InvalidWebhookSignature("no Sandbox-Signature header")
        if not self._webhook_secret:
            raise InvalidWebhookSignature("this sandbox account has no webhook secret configured")
        verify_signature(self._webhook_secret, body, header, now=self._wall_time())
        try:
            event = json.loads(body)
            return self._translate(event)
        except (ValueError, KeyError, TypeError) as exc:
            # Signed by the sandbox yet unreadable: refuse it like a bad signature (answered 400).
            raise InvalidWebhookSignature(f"unreadable sandbox event: {exc}") from exc

    @staticmethod
    def _translate(event: Mapping[str, Any]) -> ProviderEvent:
        kind = ProviderEventType(event["type"])
        data = event["data"]
        obj = data["object"]
        payment = refund = method = None
        if kind.value.startswith("payment_method."):
            method = method_details(obj)
        elif kind.value.startswith("refund."):
            refund = refund_result(obj)
        else:
            payment = charge_result(obj)
        return ProviderEvent(
            provider_event_id=event["id"],
            type=kind,
            occurred_at=datetime.fromisoformat(event["created"]),
            provider_customer_id=obj.get("customer"),
            payment=payment,
            refund=refund,
            method=method,
            setup_session_id=data.get("setup_session"),
        )

    async def complete_event(self, event: ProviderEvent) -> ProviderEvent:
        return event  # sandbox events carry the whole object

    async def advance_clock(self, clock_ref: str, to: datetime) -> None:
        await self._call("POST", f"/v1/clocks/{clock_ref}/advance", body={"to": format_timestamp(to)})
