"""What the sandbox provider does: accounts, customers, payment methods, payments, refunds, and the
things that fall due later on a clock (settlements, chargebacks, the account updater).

Objects are plain dicts in the API's own JSON shape, stored as such (`store.py`). Every change that a
merchant must hear about records an event (a webhook, delivered by `webhooks.py`) in the same SQLite
transaction as the change.

Time: a request may name a `clock_ref` (the merchant's test-clock id) and the time `at` on it. Each
(account, clock_ref) keeps the latest time it was told or advanced to; what falls due on it (a SEPA debit
settling two days later) runs when `POST /v1/clocks/{ref}/advance` passes its due time. Without a
clock_ref, the sandbox's own clock applies and a background ticker runs what falls due.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.kernel.clock import Clock, ensure_utc, format_timestamp
from gateway.kernel.ids import new_id
from gateway.sandbox.methods import (
    CARD_YEARS,
    EXPIRED_CARD_MESSAGE,
    EXPIRING_NOTICE,
    METHOD_TYPES,
    RENEWED_YEARS,
    SOON_MONTHS,
    TEST_METHODS,
    Outcome,
    TestMethod,
)
from gateway.sandbox.store import Store

CURRENCIES = frozenset({"EUR", "USD", "GBP"})
MAX_AMOUNT = 99_999_999
WALL = ""  # the clock_ref of the sandbox's own clock


class SandboxError(Exception):
    """A refusal, answered as `{"error": {"code", "message"}}` with `status`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(what: str, object_id: str) -> SandboxError:
    return SandboxError(404, "resource_missing", f"no such {what}: {object_id}")


def invalid(code: str, message: str) -> SandboxError:
    return SandboxError(400, code, message)


@dataclass(frozen=True)
class SandboxConfig:
    # A `card_async` payment settles this long after it was made (on its clock).
    async_card_delay: timedelta = timedelta(seconds=10)
    # A `card_timeout` payment is answered this late: longer than any sane client waits.
    late_answer_seconds: float = 30.0
    # Webhooks: attempts per event, exponential backoff between them (base, cap), one attempt's timeout.
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 1.0
    webhook_max_backoff_seconds: float = 300.0
    webhook_timeout_seconds: float = 5.0
    # How often the background ticker runs what fell due on the sandbox's own clock and retries webhooks.
    tick_seconds: float = 1.0
    # Where browsers reach the sandbox (hosted pages' URLs); empty = the address each request came to.
    public_url: str = ""


def to_us(at: datetime) -> int:
    delta = ensure_utc(at) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value)


def _month_after(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def expiry_instant(exp_year: int, exp_month: int) -> datetime:
    """A card is valid through the last day of its expiry month: it expires when the next month begins."""
    year, month = _month_after(exp_year, exp_month, 1)
    return datetime(year, month, 1, tzinfo=UTC)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Moment:
    """Where a request stands in time: its clock (WALL or a clock_ref) and the time on it."""

    clock_ref: str
    now: datetime

    @property
    def ref_or_none(self) -> str | None:
        return self.clock_ref or None


class Sandbox:
    def __init__(self, store: Store, clock: Clock, config: SandboxConfig | None = None) -> None:
        self.store = store
        self.clock = clock  # the sandbox's own ("wall") clock
        self.config = config or SandboxConfig()
        # Called after an event was recorded (the webhook deliverer's nudge).
        self.on_event: Callable[[], None] = lambda: None

    # --- time ---------------------------------------------------------------------------------------
    def moment(self, account_id: str, clock_ref: str | None, at: datetime | None) -> Moment:
        """The time of a request: on its clock_ref, the later of the clock's time and `at` (the clock
        follows the merchant's test clock forward); without one, the sandbox's own clock."""
        if not clock_ref:
            return Moment(WALL, self.clock.now())
        stored = self.store.clock(account_id, clock_ref)
        candidates = [v for v in (stored, to_us(at) if at is not None else None) if v is not None]
        now_us = max(candidates) if candidates else to_us(self.clock.now())
        if now_us != stored:
            self.store.set_clock(account_id, clock_ref, now_us)
        return Moment(clock_ref, from_us(now_us))

    def moment_of(self, account_id: str, clock_ref: str | None) -> Moment:
        """The current time of an object's clock (pages the customer opens carry no `at`)."""
        return self.moment(account_id, clock_ref, None)

    # --- accounts -----------------------------------------------------------------------------------
    def create_account(self, *, webhook_url: str | None, name: str | None) -> dict[str, Any]:
        api_key = "sbx_sk_" + secrets.token_urlsafe(24)
        account = {
            "id": new_id("sbacct"),
            "object": "account",
            "name": name,
            "webhook_url": webhook_url,
            "webhook_secret": "whsec_" + secrets.token_urlsafe(24),
            "created": format_timestamp(self.clock.now()),
        }
        with self.store.transaction():
            self.store.add_account(account, hash_key(api_key))
        return {**account, "api_key": api_key}

    def authenticate(self, api_key: str) -> dict[str, Any]:
        account = self.store.account_by_key(hash_key(api_key)) if api_key else None
        if account is None:
            raise SandboxError(401, "unauthenticated", "send a valid API key as `Authorization: Bearer …`")
        return account

    def update_account(self, account: dict[str, Any], *, webhook_url: str | None) -> dict[str, Any]:
        account = {**account, "webhook_url": webhook_url}
        with self.store.transaction():
            self.store.save_account(account)
        return account

    # --- idempotency --------------------------------------------------------------------------------
    def idempotent(
        self,
        account_id: str,
        key: str | None,
        request_hash: str,
        kind: str,
        create: Callable[[], dict[str, Any]],
    ) -> tuple[dict[str, Any], bool]:
        """(object, replayed): the object the first request with `key` created (as it is now), or the
        one `create` makes now, remembered under `key` in the same transaction. A refusal (an exception)
        remembers nothing, so the same key may be tried again."""
        with self.store.transaction():
            if key:
                row = self.store.remembered(account_id, key)
                if row is not None:
                    if not hmac.compare_digest(row["request_hash"], request_hash):
                        raise invalid(
                            "idempotency_key_reused",
                            "this Idempotency-Key was used with different parameters",
                        )
                    existing = self.store.get(account_id, kind, row["object_id"])
                    if existing is None:  # the key named another kind of object (another endpoint)
                        raise invalid("idempotency_key_reused", "this Idempotency-Key was used elsewhere")
                    return existing, True
            obj = create()
            if key:
                self.store.remember(account_id, key, request_hash, obj["id"], 200)
            return obj, False

    # --- customers ----------------------------------------------------------------------------------
    def create_customer(
        self, account: dict[str, Any], *, name: str, email: str | None, metadata: dict[str, str]
    ) -> dict[str, Any]:
        customer = {
            "id": new_id("sbcus"),
            "object": "customer",
            "name": name,
            "email": email,
            "metadata": metadata,
            "created": format_timestamp(self.clock.now()),
        }
        self.store.put(account["id"], customer)
        return customer

    def customer(self, account_id: str, customer_id: str) -> dict[str, Any]:
        customer = self.store.get(account_id, "customer", customer_id)
        if customer is None:
            raise not_found("customer", customer_id)
        return customer

    def _body_customer(self, account_id: str, customer_id: str) -> dict[str, Any]:
        customer = self.store.get(account_id, "customer", customer_id)
        if customer is None:
            raise invalid("customer_not_found", f"no such customer: {customer_id}")
        return customer

    # --- payment methods ----------------------------------------------------------------------------
    def create_method(
        self, account: dict[str, Any], *, customer_id: str, test_method: str, moment: Moment
    ) -> dict[str, Any]:
        customer = self._body_customer(account["id"], customer_id)
        spec = TEST_METHODS.get(test_method)
        if spec is None:
            raise invalid("unknown_test_method", f"no such test method: {test_method}")
        method_id = new_id("sbpm")
        method: dict[str, Any] = {
            "id": method_id,
            "object": "payment_method",
            "customer": customer["id"],
            "type": spec.type,
            "test_method": spec.name,
            "brand": spec.brand,
            "last4": spec.last4,
            "exp_month": None,
            "exp_year": None,
            "mandate_reference": None,
            "bank": None,
            "fingerprint": hashlib.sha256(spec.name.encode()).hexdigest()[:16],
            "status": "active",
            "clock_ref": moment.ref_or_none,
            "created": format_timestamp(moment.now),
            "version": 1,
        }
        if spec.type == "card":
            year, month = self._card_expiry(spec, moment.now)
            method["exp_year"], method["exp_month"] = year, month
            expires = expiry_instant(year, month)
            if spec.updatable:
                self.store.add_job(account["id"], moment.clock_ref, to_us(expires), "update_card", method_id)
            if spec.expires_soon:
                notice = expires - EXPIRING_NOTICE
                self.store.add_job(account["id"], moment.clock_ref, to_us(notice), "card_expiring", method_id)
        else:
            method["mandate_reference"] = "SBX-MANDATE-" + method_id[-10:]
            method["bank"] = "Sandbox Bank"
        self.store.put(account["id"], method)
        return method

    @staticmethod
    def _card_expiry(spec: TestMethod, now: datetime) -> tuple[int, int]:
        if spec.expired:
            return _month_after(now.year, now.month, -1)
        if spec.updatable or spec.expires_soon:
            return _month_after(now.year, now.month, SOON_MONTHS)
        return now.year + CARD_YEARS, 12

    def method(self, account_id: str, method_id: str) -> dict[str, Any]:
        method = self.store.get(account_id, "payment_method", method_id)
        if method is None:
            raise not_found("payment method", method_id)
        return method

    def detach_method(self, account: dict[str, Any], method_id: str) -> dict[str, Any]:
        with self.store.transaction():
            method = self.method(account["id"], method_id)
            if method["status"] == "detached":
                return method
            moment = self.moment_of(account["id"], method["clock_ref"])
            method = {**method, "status": "detached", "version": method["version"] + 1}
            self.store.put(account["id"], method)
            self._emit(account["id"], "payment_method.detached", method, moment)
        return method

    # --- setup sessions (the hosted page that saves a method) ---------------------------------------
    def create_setup_session(
        self,
        account: dict[str, Any],
        *,
        customer_id: str,
        return_url: str,
        method_types: list[str],
        currency: str | None,
        moment: Moment,
        base_url: str,
    ) -> dict[str, Any]:
        customer = self._body_customer(account["id"], customer_id)
        types = [t for t in method_types if t in METHOD_TYPES] if method_types else list(METHOD_TYPES)
        if not types:
            raise invalid(
                "method_type_not_supported",
                f"the sandbox saves only these method types: {', '.join(METHOD_TYPES)}",
            )
        if currency is not None:
            self._check_currency(currency)
        session_id = new_id("sbset")
        session = {
            "id": session_id,
            "object": "setup_session",
            "customer": customer["id"],
            "url": f"{base_url.rstrip('/')}/setup/{session_id}",
            "return_url": return_url,
            "method_types": types,
            "currency": currency.upper() if currency else None,
            "status": "open",
            "payment_method": None,
            "clock_ref": moment.ref_or_none,
            "created": format_timestamp(moment.now),
            "expires_at": format_timestamp(moment.now + timedelta(hours=24)),
        }
        self.store.put(account["id"], session)
        return session

    def setup_session(self, account_id: str | None, session_id: str) -> tuple[str, dict[str, Any]]:
        """(account id, session): pages find a session by its unguessable id alone."""
        owner = self.store.owner(session_id)
        session = self.store.get(account_id or owner, "setup_session", session_id) if owner else None
        if session is None or owner is None:
            raise not_found("setup session", session_id)
        return owner, session

    def complete_setup(self, session_id: str, test_method: str) -> dict[str, Any]:
        """The customer picked a test method on the hosted page: the method is saved and announced."""
        with self.store.transaction():
            account_id, session = self.setup_session(None, session_id)
            if session["status"] != "open":
                raise SandboxError(409, "setup_session_not_open", "this setup session is already complete")
            spec = TEST_METHODS.get(test_method)
            if spec is None or spec.type not in session["method_types"]:
                raise invalid("unknown_test_method", f"choose one of the listed methods, not {test_method!r}")
            moment = self.moment_of(account_id, session["clock_ref"])
            account = {"id": account_id}
            method = self.create_method(
                account, customer_id=session["customer"], test_method=test_method, moment=moment
            )
            session = {**session, "status": "complete", "payment_method": method["id"]}
            self.store.put(account_id, session)
            self._emit(account_id, "payment_method.attached", method, moment, setup_session=session["id"])
        return session

    # --- payments -----------------------------------------------------------------------------------
    @staticmethod
    def _check_currency(currency: str) -> str:
        if currency.upper() not in CURRENCIES:
            raise invalid(
                "currency_not_supported",
                f"the sandbox takes {', '.join(sorted(CURRENCIES))}, not {currency!r}",
            )
        return currency.upper()

    def create_payment(
        self,
        account: dict[str, Any],
        *,
        customer_id: str,
        method_id: str,
        amount: int,
        currency: str,
        description: str | None,
        metadata: dict[str, str],
        off_session: bool,
        return_url: str | None,
        moment: Moment,
        base_url: str,
    ) -> dict[str, Any]:
        if amount < 1:
            raise invalid("amount_too_small", "amount must be at least 1 (minor units)")
        if amount > MAX_AMOUNT:
            raise invalid("amount_too_large", f"amount must be at most {MAX_AMOUNT} (minor units)")
        currency = self._check_currency(currency)
        customer = self._body_customer(account["id"], customer_id)
        method = self.store.get(account["id"], "payment_method", method_id)
        if method is None or method["customer"] != customer["id"]:
            raise invalid("payment_method_not_found", f"no such payment method of this customer: {method_id}")
        if method["status"] == "detached":
            raise invalid("payment_method_detached", "this payment method was detached")
        spec = TEST_METHODS[method["test_method"]]
        payment_id = new_id("sbpay")
        payment: dict[str, Any] = {
            "id": payment_id,
            "object": "payment",
            "customer": customer["id"],
            "payment_method": method["id"],
            "amount": amount,
            "currency": currency,
            "status": "processing",
            "decline_code": None,
            "decline_message": None,
            "action_url": None,
            "return_url": return_url,
            "description": description,
            "metadata": metadata,
            "off_session": off_session,
            "amount_refunded": 0,
            "charged_back": False,
            "version": 1,
            "clock_ref": moment.ref_or_none,
            "created": format_timestamp(moment.now),
            "settled_at": None,
        }
        expired = method["type"] == "card" and moment.now >= expiry_instant(
            method["exp_year"], method["exp_month"]
        )
        if expired:
            payment.update(status="failed", decline_code="expired_card", decline_message=EXPIRED_CARD_MESSAGE)
        elif spec.outcome is Outcome.DECLINES:
            payment.update(
                status="failed", decline_code=spec.decline_code, decline_message=spec.decline_message
            )
        elif spec.outcome is Outcome.CHALLENGE:
            payment.update(
                status="requires_action", action_url=f"{base_url.rstrip('/')}/challenge/{payment_id}"
            )
        elif spec.outcome is Outcome.SETTLES_LATER:
            delay = spec.settle_after or self.config.async_card_delay
            self.store.add_job(
                account["id"], moment.clock_ref, to_us(moment.now + delay), "settle", payment_id
            )
        else:  # SUCCEEDS, ANSWERS_LATE (the answer is late, the charge is not)
            payment.update(status="succeeded", settled_at=format_timestamp(moment.now))
        self.store.put(account["id"], payment)
        event = {
            "succeeded": "payment.succeeded",
            "failed": "payment.failed",
            "requires_action": "payment.requires_action",
        }.get(payment["status"])
        if event:
            self._emit(account["id"], event, payment, moment)
        return payment

    def answers_late(self, payment: dict[str, Any]) -> bool:
        method = TEST_METHODS.get(self._method_name(payment))
        return method is not None and method.outcome is Outcome.ANSWERS_LATE

    def _method_name(self, payment: dict[str, Any]) -> str:
        method = self.store.get(None, "payment_method", payment["payment_method"])
        return str(method["test_method"]) if method else ""

    def payment(self, account_id: str | None, payment_id: str) -> dict[str, Any]:
        payment = self.store.get(account_id, "payment", payment_id)
        if payment is None:
            raise not_found("payment", payment_id)
        return payment

    def payments(self, account_id: str, customer_id: str | None) -> list[dict[str, Any]]:
        return self.store.list_objects(account_id, "payment", customer_id)

    def _update_payment(
        self, account_id: str, payment: dict[str, Any], moment: Moment, event: str | None, **changes: Any
    ) -> dict[str, Any]:
        payment = {**payment, **changes, "version": payment["version"] + 1}
        self.store.put(account_id, payment)
        if event:
            self._emit(account_id, event, payment, moment)
        return payment

    def complete_challenge(self, payment_id: str, *, succeed: bool) -> dict[str, Any]:
        """The customer answered the 3-D Secure page."""
        with self.store.transaction():
            account_id = self.store.owner(payment_id)
            payment = self.payment(account_id, payment_id)
            assert account_id is not None
            if payment["status"] != "requires_action":
                raise SandboxError(
                    409, "payment_not_awaiting_action", "this payment awaits no authentication"
                )
            moment = self.moment_of(account_id, payment["clock_ref"])
            if succeed:
                return self._update_payment(
                    account_id,
                    payment,
                    moment,
                    "payment.succeeded",
                    status="succeeded",
                    action_url=None,
                    settled_at=format_timestamp(moment.now),
                )
            return self._update_payment(
                account_id,
                payment,
                moment,
                "payment.failed",
                status="failed",
                action_url=None,
                decline_code="authentication_required",
                decline_message="The customer did not complete 3-D Secure authentication.",
            )

    # --- refunds ------------------------------------------------------------------------------------
    def create_refund(
        self, account: dict[str, Any], *, payment_id: str, amount: int | None, reason: str | None
    ) -> dict[str, Any]:
        payment = self.store.get(account["id"], "payment", payment_id)
        if payment is None:
            raise invalid("payment_not_found", f"no such payment: {payment_id}")
        if payment["status"] != "succeeded" or payment["charged_back"]:
            raise invalid("payment_not_refundable", f"a {payment['status']} payment cannot be refunded")
        refundable = payment["amount"] - payment["amount_refunded"]
        amount = refundable if amount is None else amount
        if amount < 1:
            raise invalid("amount_too_small", "a refund is at least 1 (minor units)")
        if amount > refundable:
            raise invalid(
                "amount_exceeds_refundable",
                f"at most {refundable} {payment['currency']} of this payment can still be refunded",
            )
        moment = self.moment_of(account["id"], payment["clock_ref"])
        refund = {
            "id": new_id("sbre"),
            "object": "refund",
            "payment": payment["id"],
            "customer": payment["customer"],
            "amount": amount,
            "currency": payment["currency"],
            "status": "succeeded",
            "reason": reason,
            "clock_ref": payment["clock_ref"],
            "created": format_timestamp(moment.now),
        }
        self.store.put(account["id"], refund)
        self._update_payment(
            account["id"], payment, moment, None, amount_refunded=payment["amount_refunded"] + amount
        )
        self._emit(account["id"], "refund.succeeded", refund, moment)
        return refund

    def refund(self, account_id: str, refund_id: str) -> dict[str, Any]:
        refund = self.store.get(account_id, "refund", refund_id)
        if refund is None:
            raise not_found("refund", refund_id)
        return refund

    # --- clocks and what falls due on them ----------------------------------------------------------
    def advance(self, account: dict[str, Any], clock_ref: str, to: datetime) -> dict[str, Any]:
        """Run, in due order, everything due on this clock by `to`, each at its own due time."""
        to = ensure_utc(to)
        with self.store.transaction():
            current = self.store.clock(account["id"], clock_ref)
            if current is not None and to_us(to) < current:
                raise invalid(
                    "clock_cannot_go_back", f"this clock is at {format_timestamp(from_us(current))}"
                )
            ran = self._run_due(account["id"], clock_ref, to_us(to))
            self.store.set_clock(account["id"], clock_ref, to_us(to))
            pending = self.store.pending_jobs(account["id"], clock_ref)
        return {
            "object": "clock",
            "clock_ref": clock_ref,
            "now": format_timestamp(to),
            "jobs_run": ran,
            "jobs_pending": pending,
        }

    def clock_state(self, account: dict[str, Any], clock_ref: str) -> dict[str, Any]:
        now_us = self.store.clock(account["id"], clock_ref)
        if now_us is None:
            raise not_found("clock", clock_ref)
        return {
            "object": "clock",
            "clock_ref": clock_ref,
            "now": format_timestamp(from_us(now_us)),
            "jobs_pending": self.store.pending_jobs(account["id"], clock_ref),
        }

    def tick(self) -> int:
        """What fell due on the sandbox's own clock (every account's)."""
        with self.store.transaction():
            return self._run_due(None, WALL, to_us(self.clock.now()))

    def _run_due(self, account_id: str | None, clock_ref: str, until_us: int) -> int:
        ran = 0
        while (job := self.store.next_due_job(account_id, clock_ref, until_us)) is not None:
            if clock_ref:
                self.store.set_clock(job["account_id"], clock_ref, job["due_us"])
            moment = Moment(clock_ref, from_us(job["due_us"]))
            JOBS[job["kind"]](self, job["account_id"], job["object_id"], moment)
            self.store.finish_job(job["seq"])
            ran += 1
        return ran

    def _settle(self, account_id: str, payment_id: str, moment: Moment) -> None:
        payment = self.payment(account_id, payment_id)
        if payment["status"] != "processing":
            return
        self._update_payment(
            account_id,
            payment,
            moment,
            "payment.succeeded",
            status="succeeded",
            settled_at=format_timestamp(moment.now),
        )
        spec = TEST_METHODS[self._method_name(payment)]
        if spec.charged_back_after is not None:
            due = to_us(moment.now + spec.charged_back_after)
            self.store.add_job(account_id, moment.clock_ref, due, "charge_back", payment_id)

    def _charge_back(self, account_id: str, payment_id: str, moment: Moment) -> None:
        payment = self.payment(account_id, payment_id)
        if payment["status"] != "succeeded" or payment["charged_back"]:
            return
        self._update_payment(
            account_id,
            payment,
            moment,
            "payment.charged_back",
            charged_back=True,
            amount_charged_back=payment["amount"] - payment["amount_refunded"],
            charged_back_at=format_timestamp(moment.now),
        )

    def _update_card(self, account_id: str, method_id: str, moment: Moment) -> None:
        """Account updater: the network gave the card a new expiry."""
        method = self.method(account_id, method_id)
        if method["status"] != "active":
            return
        method = {**method, "exp_year": method["exp_year"] + RENEWED_YEARS, "version": method["version"] + 1}
        self.store.put(account_id, method)
        self._emit(account_id, "payment_method.updated", method, moment)
        due = to_us(expiry_instant(method["exp_year"], method["exp_month"]))
        self.store.add_job(account_id, moment.clock_ref, due, "update_card", method_id)

    def _card_expiring(self, account_id: str, method_id: str, moment: Moment) -> None:
        """Account updater: this card cannot be renewed; it expires in 30 days."""
        method = self.method(account_id, method_id)
        if method["status"] == "active":
            self._emit(account_id, "payment_method.expiring", method, moment)

    # --- events -------------------------------------------------------------------------------------
    def _emit(self, account_id: str, type_: str, obj: dict[str, Any], moment: Moment, **extra: Any) -> None:
        event = {
            "id": new_id("sbevt"),
            "object": "event",
            "type": type_,
            "account": account_id,
            "created": format_timestamp(moment.now),  # on the object's clock
            "clock_ref": moment.ref_or_none,
            "data": {"object": obj, **extra},
        }
        # Delivery is transport, in real time: the first attempt goes out as soon as possible.
        self.store.add_event(event, account_id, time.time())
        self.on_event()

    def events(self, account_id: str) -> list[dict[str, Any]]:
        return [
            {
                "id": row["id"],
                "type": row["type"],
                "event": json.loads(row["body"]),
                "attempts": row["attempts"],
                "delivered": row["delivered_at"] is not None,
                "last_error": row["last_error"],
            }
            for row in self.store.events(account_id)
        ]


JOBS: dict[str, Callable[[Sandbox, str, str, Moment], None]] = {
    "settle": Sandbox._settle,
    "charge_back": Sandbox._charge_back,
    "update_card": Sandbox._update_card,
    "card_expiring": Sandbox._card_expiring,
}
