"""Stories through the HTTP API with the real sandbox provider: Tiergate and the sandbox each served on a
loopback port (uvicorn), the sandbox's webhooks POSTed to Tiergate's webhook endpoint over HTTP, applied
by Tiergate's background relay."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.all_models import Base
from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.observability import requests
from gateway.payments.models import ProviderEventRecord
from gateway.payments.runtime import PaymentsRuntime
from gateway.payments.service import PaymentSettings
from gateway.sandbox import SandboxConfig, create_sandbox_app
from gateway.security.secretbox import box_for
from tests.conftest import START, Api
from tests.served import serving

TIMEOUT = 1.5  # Tiergate waits this long for the provider ...
SANDBOX = SandboxConfig(
    late_answer_seconds=4.0,  # ... and a `card_timeout` answer comes later than that
    webhook_backoff_seconds=0.05,
    webhook_max_backoff_seconds=0.2,
    webhook_timeout_seconds=5.0,
    tick_seconds=0.05,
)


@dataclass
class World:
    api: Api
    sandbox: httpx.AsyncClient  # as the Tiergate account on the sandbox
    account: str  # Tiergate's provider account id
    credentials: dict[str, str]
    db: Database
    clock: FrozenClock
    settings: Settings

    async def customer(self, name: str = "Acme") -> str:
        row = await self.api.post("/v1/customers", {"name": name, "currency": "EUR", "country": "NL"})
        return str(row["id"])

    async def method(self, customer: str, test_method: str) -> dict[str, Any]:
        """The customer saves a method on the sandbox's hosted page; it arrives by webhook."""
        before = len(await self.methods(customer))
        session = await self.api.post(
            f"/v1/customers/{customer}/setup_sessions", {"return_url": "https://shop.example/back"}
        )
        async with httpx.AsyncClient() as browser:
            page = await browser.get(session["url"])
            assert page.status_code == 200 and test_method in page.text
            submitted = await browser.post(session["url"], data={"test_method": test_method})
            assert submitted.status_code == 303
        methods = await eventually(lambda: self.methods(customer), lambda rows: len(rows) > before)
        return methods[-1]

    async def methods(self, customer: str) -> list[dict[str, Any]]:
        return list((await self.api.get(f"/v1/customers/{customer}/payment_methods"))["data"])

    async def invoice(self, customer: str, amount: int, *, auto: bool = True) -> dict[str, Any]:
        """An open invoice; `auto`: charged automatically once finalised, else left to `/pay`."""
        await self.api.post(
            "/v1/invoice_items",
            {"customer": customer, "amount": amount, "currency": "EUR", "description": "Plan"},
        )
        invoice: dict[str, Any] = await self.api.post(
            "/v1/invoices", {"customer": customer, "auto_advance": auto}
        )
        if not auto:
            invoice = await self.api.post(f"/v1/invoices/{invoice['id']}/finalize", expect=200)
        return invoice

    async def payments(self, invoice: str) -> list[dict[str, Any]]:
        return list((await self.api.get("/v1/payments", params={"invoice": invoice}))["data"])

    async def signed(self, event: dict[str, Any]) -> Any:
        body = json.dumps(event).encode()
        t = int(time.time())
        mac = hmac.new(
            self.credentials["webhook_secret"].encode(), f"{t}.".encode() + body, hashlib.sha256
        ).hexdigest()
        response = await self.api.client.post(
            f"/v1/payment_providers/{self.account}/webhooks",
            content=body,
            headers={"Sandbox-Signature": f"t={t},v1={mac}"},
        )
        assert response.status_code == 200, response.text
        return response.json()


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], seconds: float = 15.0
) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await read()
        if ok(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"never true: {value}"
        await asyncio.sleep(0.1)


@asynccontextmanager
async def world_on(db: Database, clock: FrozenClock, settings: Settings) -> AsyncIterator[World]:
    settings = dataclasses.replace(
        settings,
        relay_enabled=True,
        relay_interval_seconds=0.2,
        payment_provider_timeout_seconds=TIMEOUT,
        payments_sandbox_mount=False,
    )
    sandbox_app = create_sandbox_app(":memory:", clock=FrozenClock(START), config=SANDBOX)
    async with serving(sandbox_app) as sandbox_api, serving(create_app(settings, clock=clock, db=db)) as api:
        base = str(sandbox_api.client.base_url).rstrip("/")
        opened = (
            await sandbox_api.client.post("/v1/accounts", json={"name": "Tiergate", "webhook_url": None})
        ).json()
        credentials = {
            "base_url": base,
            "api_key": opened["api_key"],
            "webhook_secret": opened["webhook_secret"],
        }
        account = await api.post(
            "/v1/payment_provider_accounts",
            {"kind": "sandbox", "name": "Sandbox", "credentials": credentials, "is_default": True},
        )
        tiergate = str(api.client.base_url).rstrip("/")
        headers = {"Authorization": f"Bearer {opened['api_key']}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=10) as sandbox:
            patched = await sandbox.patch(
                "/v1/account",
                json={"webhook_url": f"{tiergate}/v1/payment_providers/{account['id']}/webhooks"},
            )
            assert patched.status_code == 200, patched.text
            yield World(api, sandbox, account["id"], credentials, db, clock, settings)


@pytest.fixture
async def world(db: Database, clock: FrozenClock, settings: Settings) -> AsyncIterator[World]:
    async with world_on(db, clock, settings) as w:
        yield w


async def test_a_good_card_pays_and_a_short_card_is_declined_with_its_code(world: World) -> None:
    good = await world.customer("Good")
    method = await world.method(good, "card_ok")
    assert (method["type"], method["brand"], method["is_default"]) == ("card", method["brand"], True)
    assert method["last4"] and len(method["last4"]) == 4
    # Finalised with a card on file: charged at once, after the finalising transaction committed.
    invoice = await world.invoice(good, 4_900)
    paid = await eventually(
        lambda: world.api.get(f"/v1/invoices/{invoice['id']}"), lambda i: i["status"] == "paid"
    )
    assert (paid["amount_paid"], paid["amount_remaining"]) == (4_900, 0)
    [payment] = await world.payments(invoice["id"])
    assert (payment["status"], payment["amount"], payment["attempt"]) == ("succeeded", 4_900, 1)

    short = await world.customer("Short")
    await world.method(short, "card_insufficient_funds")
    invoice = await world.invoice(short, 1_250)
    [failed] = await eventually(
        lambda: world.payments(invoice["id"]), lambda rows: [r["status"] for r in rows] == ["failed"]
    )
    after = await world.api.get(f"/v1/invoices/{invoice['id']}")
    assert (after["status"], after["amount_remaining"]) == ("open", 1_250)
    assert (failed["status"], failed["decline_code"], failed["hard_decline"]) == (
        "failed",
        "insufficient_funds",
        False,
    )


async def test_3ds_gives_an_action_url_then_webhooks_dedupe_and_an_older_version_is_ignored(
    world: World,
) -> None:
    customer = await world.customer()
    await world.method(customer, "card_3ds")
    invoice = await world.invoice(customer, 3_000, auto=False)
    await world.api.post(
        f"/v1/invoices/{invoice['id']}/pay",
        {"off_session": False, "return_url": "https://shop.example/paid"},
        expect=200,
    )
    [payment] = await world.payments(invoice["id"])
    assert payment["status"] == "requires_action" and "/challenge/" in payment["action_url"]
    async with httpx.AsyncClient() as browser:  # the customer completes the challenge
        page = await browser.get(payment["action_url"])
        assert page.status_code == 200
        done = await browser.post(payment["action_url"], data={"outcome": "complete"})
        assert done.status_code == 303
    await eventually(lambda: world.api.get(f"/v1/invoices/{invoice['id']}"), lambda i: i["status"] == "paid")
    settled = await world.api.get(f"/v1/payments/{payment['id']}")
    assert settled["status"] == "succeeded"
    async with world.db.unit_of_work() as session:
        stored = (
            await session.scalars(
                select(ProviderEventRecord).where(ProviderEventRecord.type == "payment.succeeded")
            )
        ).one()
        provider_payment = stored.payload["payment"]["provider_payment_id"]
        version = stored.payload["payment"]["version"]
    obj = {
        "id": provider_payment,
        "object": "payment",
        "status": "failed",
        "amount": 3_000,
        "currency": "EUR",
        "decline_code": "insufficient_funds",
        "version": version - 1,
    }
    duplicate = await world.signed(
        {
            "id": stored.provider_event_id,
            "type": "payment.succeeded",
            "created": "2026-01-01T00:00:00+00:00",
            "data": {"object": {**obj, "status": "succeeded", "version": version}},
        }
    )
    assert duplicate["duplicate"] is True
    older = await world.signed(
        {
            "id": "evt_late_older",
            "type": "payment.failed",
            "created": "2026-01-01T00:00:00+00:00",
            "data": {"object": obj},
        }
    )
    assert older["duplicate"] is False

    async def outcome() -> str | None:
        async with world.db.unit_of_work() as session:
            row = (
                await session.scalars(
                    select(ProviderEventRecord).where(
                        ProviderEventRecord.provider_event_id == "evt_late_older"
                    )
                )
            ).one()
            return row.outcome

    assert await eventually(outcome, lambda o: o is not None) == "ignored"
    again = await world.api.get(f"/v1/payments/{payment['id']}")
    assert (again["status"], again["decline_code"]) == ("succeeded", None)


async def test_refund_half_a_payment_with_its_credit_note(world: World) -> None:
    customer = await world.customer()
    await world.method(customer, "card_ok")
    invoice = await world.invoice(customer, 9_999, auto=False)
    await world.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [payment] = await world.payments(invoice["id"])
    refund = await world.api.post(
        f"/v1/payments/{payment['id']}/refund", {"amount": 4_999, "reason": "requested_by_customer"}
    )
    assert (refund["amount"], refund["status"]) == (4_999, "succeeded")
    note = await world.api.get(f"/v1/credit_notes/{refund['credit_note']}")
    assert (note["total"], note["out_of_band"], note["credit_to_balance"], note["currency"]) == (
        4_999,
        4_999,
        0,
        "EUR",
    )
    assert (await world.api.get(f"/v1/payments/{payment['id']}"))["amount_refunded"] == 4_999
    over = await world.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 5_001}, expect=409)
    assert (over["code"], over["refundable"]) == ("refund_exceeds_payment", 5_000)
    at_sandbox = (await world.sandbox.get("/v1/payments/" + (await provider_id(world, payment["id"])))).json()
    assert at_sandbox.get("amount_refunded", 4_999) == 4_999


async def provider_id(world: World, payment_id: str) -> str:
    from gateway.payments.models import Payment

    async with world.db.unit_of_work() as session:
        row = await session.get(Payment, payment_id)
        assert row is not None and row.provider_payment_id
        return row.provider_payment_id


async def test_reconciliation_settles_a_timed_out_charge_exactly_once(world: World) -> None:
    customer = await world.customer()
    await world.method(customer, "card_timeout")
    invoice = await world.invoice(customer, 7_700, auto=False)
    await world.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [payment] = await world.payments(invoice["id"])
    assert payment["status"] == "unknown"
    jobs = PaymentsRuntime(
        world.db,
        world.clock,
        box_for(world.settings),
        settings=PaymentSettings(provider_timeout_seconds=TIMEOUT),
    )
    world.clock.advance(timedelta(minutes=10))
    results = [await jobs.reconcile(), await jobs.reconcile()]
    assert [r.settled for r in results] == [1, 0]
    assert (await world.api.get(f"/v1/payments/{payment['id']}"))["status"] == "succeeded"
    paid = await world.api.get(f"/v1/invoices/{invoice['id']}")
    assert (paid["status"], paid["amount_paid"]) == ("paid", 7_700)
    charges = (await world.sandbox.get("/v1/payments")).json()["data"]
    assert [c["amount"] for c in charges if c["amount"] == 7_700] == [7_700]  # one charge at the provider


CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)")


async def test_no_card_number_or_cvc_anywhere_after_a_story(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    customer = await world.customer()
    await world.method(customer, "card_ok")
    invoice = await world.invoice(customer, 1_000, auto=False)
    await world.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [payment] = await world.payments(invoice["id"])
    await world.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 500})
    dump: list[str] = []
    async with world.db.unit_of_work() as session:
        for table in Base.metadata.sorted_tables:
            for row in (await session.execute(select(table))).all():
                dump.append(repr(tuple(row)))
    text = "\n".join(dump) + "\n" + caplog.text
    assert len(dump) > 20
    # Ids are ULIDs and hex; timestamps have separators: a 13-19 digit run would be a card number.
    scrubbed = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?", "", text)
    # Request ids (in httpcore's debug lines of the X-Request-ID header, in audit rows) are this process's
    # random hex prefix and a hex counter: a full run once drew a prefix ending in digits while the
    # counter read 0x1000-0x1009, fourteen digits in a row.
    scrubbed = re.sub(re.escape(requests.PREFIX) + "[0-9a-f]{8}", "<request id>", scrubbed)
    found = [scrubbed[max(0, m.start() - 80) : m.end() + 40] for m in CARD_NUMBER.finditer(scrubbed)]
    assert found == []  # each with its surroundings, to tell which column or log line holds it
    assert not re.search(r"\b(cvc|cvv|cvv2|card_number|pan)\b", text, re.IGNORECASE)
