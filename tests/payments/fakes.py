"""An in-process fake of the PaymentProvider port, for the core's unit and API tests. The end-to-end stories
use the real sandbox over HTTP (tests/payments/test_sandbox_stories.py); this fake only mirrors its test
methods and its webhook signature so the core can be tested without it."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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

DECLINES = {
    "card_insufficient_funds": DeclineCode.INSUFFICIENT_FUNDS,
    "card_lost": DeclineCode.LOST_CARD,
    "card_stolen": DeclineCode.STOLEN_CARD,
    "card_do_not_honor": DeclineCode.DO_NOT_HONOR,
    "card_expired": DeclineCode.EXPIRED_CARD,
}


@dataclass
class FakeWorld:
    """What the fake 'provider company' holds: shared by every adapter built for the same api_key."""

    customers: dict[str, str] = field(default_factory=dict)  # idempotency key -> customer id
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, ChargeResult] = field(default_factory=dict)  # provider id -> result
    by_key: dict[str, str] = field(default_factory=dict)  # idempotency key -> provider payment id
    refunds: dict[str, RefundResult] = field(default_factory=dict)  # idempotency key -> refund
    refund_status: RefundStatus = RefundStatus.SUCCEEDED  # what a new refund answers
    charges_made: int = 0  # distinct charges created (the double-charge counter)
    timeouts_left: dict[str, int] = field(default_factory=dict)  # key -> answers still lost
    clocks: list[tuple[str, datetime]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def next_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.counter)}"


WORLDS: dict[str, FakeWorld] = {}


def world(api_key: str) -> FakeWorld:
    return WORLDS.setdefault(api_key, FakeWorld())


def sign(secret: str, body: bytes, t: int = 1_700_000_000) -> str:
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class FakeProvider:
    kind = ProviderKind.SANDBOX

    def __init__(self, credentials: dict[str, str], *, timeout_seconds: float) -> None:
        self.api_key = credentials["api_key"]
        self.webhook_secret = credentials["webhook_secret"]
        self.world = world(self.api_key)

    def supports_currency(self, currency: str) -> bool:
        return currency.upper() in {"EUR", "USD", "GBP"}

    async def create_customer(
        self, *, customer_id: str, name: str, email: str | None, idempotency_key: str
    ) -> str:
        return self.world.customers.setdefault(idempotency_key, self.world.next_id("fcus"))

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
        sid = self.world.next_id("fset")
        return SetupSession(sid, f"https://fake.example/setup/{sid}")

    def add_method(self, provider_customer_id: str, test_method: str) -> MethodDetails:
        pmid = self.world.next_id("fpm")
        self.world.methods[pmid] = {"customer": provider_customer_id, "test": test_method}
        return MethodDetails(pmid, MethodType.CARD, brand="visa", last4="4242", exp_month=12, exp_year=2030)

    async def get_method(self, provider_method_id: str) -> MethodDetails:
        return MethodDetails(provider_method_id, MethodType.CARD, brand="visa", last4="4242")

    async def detach_method(self, provider_method_id: str) -> None:
        self.world.methods[provider_method_id]["detached"] = True

    async def charge(self, request: ChargeRequest) -> ChargeResult:
        if not self.supports_currency(request.currency):
            raise ProviderRejected("currency", code="currency_not_supported")
        existing = self.world.by_key.get(request.idempotency_key)
        if existing is None:
            method = self.world.methods.get(request.provider_method_id)
            if method is None or method.get("detached"):
                raise ProviderRejected("no such method", code="payment_method_not_found")
            test = method["test"]
            pid = self.world.next_id("fpay")
            self.world.charges_made += 1
            if test in DECLINES:
                result = ChargeResult(
                    ChargeStatus.FAILED,
                    pid,
                    request.amount,
                    request.currency,
                    decline_code=DECLINES[test],
                    version=1,
                )
            elif test == "card_3ds":
                result = ChargeResult(
                    ChargeStatus.REQUIRES_ACTION,
                    pid,
                    request.amount,
                    request.currency,
                    action_url=f"https://fake.example/challenge/{pid}",
                    version=1,
                )
            else:
                result = ChargeResult(
                    ChargeStatus.SUCCEEDED, pid, request.amount, request.currency, version=1
                )
            self.world.payments[pid] = result
            self.world.by_key[request.idempotency_key] = pid
            if test == "card_timeout":
                self.world.timeouts_left[request.idempotency_key] = 1
        if self.world.timeouts_left.get(request.idempotency_key, 0) > 0:
            self.world.timeouts_left[request.idempotency_key] -= 1
            raise ProviderUnavailable("timed out")
        return self.world.payments[self.world.by_key[request.idempotency_key]]

    async def retrieve_payment(self, provider_payment_id: str) -> ChargeResult:
        return self.world.payments[provider_payment_id]

    async def refund(self, request: RefundRequest) -> RefundResult:
        found = self.world.refunds.get(request.idempotency_key)
        if found is None:
            found = RefundResult(
                self.world.next_id("fre"), self.world.refund_status, request.amount, request.currency
            )
            self.world.refunds[request.idempotency_key] = found
        return found

    async def retrieve_refund(self, provider_payment_id: str, provider_refund_id: str) -> RefundResult:
        return next(r for r in self.world.refunds.values() if r.provider_refund_id == provider_refund_id)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        header = headers.get("sandbox-signature", "")
        parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
        expected = sign(self.webhook_secret, body, int(parts.get("t", "0") or 0))
        if not hmac.compare_digest(expected, header):
            raise InvalidWebhookSignature("bad signature")
        data = json.loads(body)
        if data["type"] not in {t.value for t in ProviderEventType}:
            # As the real adapters do with an event type Tiergate does not use (the port's contract).
            raise ProviderRejected(f"event type {data['type']!r} is not used", code="event_not_supported")
        payment = data.get("payment")
        method = data.get("method")
        return ProviderEvent(
            provider_event_id=data["id"],
            type=ProviderEventType(data["type"]),
            occurred_at=datetime.now(UTC),
            provider_customer_id=data.get("customer"),
            payment=ChargeResult(
                ChargeStatus(payment["status"]),
                payment["id"],
                payment["amount"],
                payment["currency"],
                decline_code=DeclineCode(payment["decline_code"]) if payment.get("decline_code") else None,
                version=payment["version"],
            )
            if payment
            else None,
            method=MethodDetails(
                method["id"],
                MethodType.CARD,
                brand="visa",
                last4=method.get("last4", "4242"),
                exp_month=method.get("exp_month", 12),
                exp_year=method.get("exp_year", 2030),
            )
            if method
            else None,
        )

    async def complete_event(self, event: ProviderEvent) -> ProviderEvent:
        return event

    async def advance_clock(self, clock_ref: str, to: datetime) -> None:
        self.world.clocks.append((clock_ref, to))
