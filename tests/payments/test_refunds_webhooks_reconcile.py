"""Refunds with their credit notes, inbound webhooks (dedupe, order), reconciliation, test clocks: on the
in-process fake provider."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.payments.models import Payment, ProviderEventRecord
from gateway.payments.runtime import PaymentsRuntime
from gateway.payments.service import PaymentSettings
from gateway.security.secretbox import box_for
from tests.payments.conftest import PayKit
from tests.payments.test_collection_api import events


def runtime(kit: PayKit) -> PaymentsRuntime:
    return PaymentsRuntime(
        kit.db, kit.clock, box_for(kit.settings), settings=PaymentSettings(reconcile_after_seconds=60)
    )


async def paid_invoice(kit: PayKit, amount: int, test_method: str = "card_ok") -> tuple[str, dict, dict]:
    customer = await kit.customer()
    await kit.method(customer, test_method)
    invoice = await kit.open_invoice(customer, amount)
    await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    [payment] = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
    return customer, invoice, payment


async def test_refund_half_a_payment_with_its_credit_note(kit: PayKit) -> None:
    customer, invoice, payment = await paid_invoice(kit, 12_100)
    refund = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 6_050})
    assert (refund["amount"], refund["currency"], refund["status"]) == (6_050, "EUR", "succeeded")
    note = await kit.api.get(f"/v1/credit_notes/{refund['credit_note']}")
    assert (note["invoice"], note["total"], note["out_of_band"], note["credit_to_balance"]) == (
        invoice["id"],
        6_050,
        6_050,
        0,
    )
    after = await kit.api.get(f"/v1/payments/{payment['id']}")
    assert after["amount_refunded"] == 6_050
    [refunded] = await events(kit, "payment.refunded")
    assert refunded["refund"]["amount"] == 6_050 and refunded["payment"]["amount_refunded"] == 6_050
    too_much = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 6_051}, expect=409)
    assert (too_much["code"], too_much["refundable"]) == ("refund_exceeds_payment", 6_050)
    rest = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {})
    assert rest["amount"] == 6_050
    nothing = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 1}, expect=409)
    assert nothing["code"] == "refund_exceeds_payment"
    assert len(kit.provider.world.refunds) == 2
    assert (await kit.api.get(f"/v1/customers/{customer}/balance"))["available"] == {}


async def test_a_failed_payment_cannot_be_refunded(kit: PayKit) -> None:
    _, _, payment = await paid_invoice(kit, 900, "card_insufficient_funds")
    refused = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {}, expect=409)
    assert refused["code"] == "payment_not_refundable"


async def test_an_event_type_tiergate_does_not_use_is_acknowledged_and_not_stored(kit: PayKit) -> None:
    # Answered 2xx, or the provider redelivers it for days; nothing is stored or applied.
    answer = await kit.webhook({"id": "evt_unused", "type": "customer.created"})
    assert answer == {"received": True, "duplicate": False, "ignored": True}
    async with kit.db.unit_of_work() as session:
        stored = (await session.scalars(select(ProviderEventRecord))).all()
    assert stored == []


async def test_webhooks_are_deduplicated_and_older_versions_ignored(kit: PayKit) -> None:
    _, invoice, payment = await paid_invoice(kit, 3_000, "card_3ds")
    async with kit.db.unit_of_work() as session:
        row = await session.get(Payment, payment["id"])
        assert row is not None
        provider_id = row.provider_payment_id
    succeeded = {
        "id": "evt_ok",
        "type": "payment.succeeded",
        "payment": {
            "id": provider_id,
            "status": "succeeded",
            "amount": 3_000,
            "currency": "EUR",
            "version": 3,
        },
    }
    first = await kit.webhook(succeeded)
    second = await kit.webhook(succeeded)
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    # An older state arrives late: requires_action at version 2, and a failure at version 2.
    await kit.webhook(
        {
            "id": "evt_old",
            "type": "payment.failed",
            "payment": {
                "id": provider_id,
                "status": "failed",
                "amount": 3_000,
                "currency": "EUR",
                "decline_code": "insufficient_funds",
                "version": 2,
            },
        }
    )
    await kit.relay()
    after = await kit.api.get(f"/v1/payments/{payment['id']}")
    assert after["status"] == "succeeded" and after["decline_code"] is None
    assert (await kit.api.get(f"/v1/invoices/{invoice['id']}"))["status"] == "paid"
    assert [e["type"] for e in await events(kit, "payment.")] == [
        "payment.action_required",
        "payment.succeeded",
    ]
    async with kit.db.unit_of_work() as session:
        outcomes = dict(
            (
                await session.execute(
                    select(ProviderEventRecord.provider_event_id, ProviderEventRecord.outcome)
                )
            ).all()
        )
    assert outcomes["evt_ok"] == "applied" and outcomes["evt_old"] == "ignored"
    bad = await kit.webhook(succeeded | {"id": "evt_forged"}, expect=400, secret="not-the-secret")
    assert bad["code"] == "invalid_webhook_signature"


async def test_reconciliation_settles_a_timed_out_charge_exactly_once(kit: PayKit) -> None:
    customer = await kit.customer()
    await kit.method(customer, "card_timeout")
    invoice = await kit.open_invoice(customer, 4_200)
    after = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    assert after["status"] == "open"
    [payment] = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"]}))["data"]
    assert payment["status"] == "unknown"
    jobs = runtime(kit)
    assert (await jobs.reconcile()).looked_at == 0  # not old enough yet
    kit.clock.advance(timedelta(minutes=10))
    first, second = await jobs.reconcile(), await jobs.reconcile()
    assert (first.settled, second.looked_at) == (1, 0)
    assert (await kit.api.get(f"/v1/payments/{payment['id']}"))["status"] == "succeeded"
    paid = await kit.api.get(f"/v1/invoices/{invoice['id']}")
    assert (paid["status"], paid["amount_paid"]) == ("paid", 4_200)
    assert kit.provider.world.charges_made == 1
    assert [e["type"] for e in await events(kit, "payment.")] == ["payment.succeeded"]


async def test_a_test_clock_advance_moves_the_providers_clock(kit: PayKit) -> None:
    clock = await kit.api.post("/v1/test_clocks", {"frozen_time": "2026-01-01T00:00:00Z"})
    customer = await kit.customer()
    await kit.api.post(f"/v1/test_clocks/{clock['id']}/customers", {"customer": customer})
    await kit.method(customer)
    await kit.api.post(
        f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2026-02-01T00:00:00Z"}, expect=201
    )
    assert [(ref, to.isoformat()) for ref, to in kit.provider.world.clocks] == [
        (clock["id"], "2026-02-01T00:00:00+00:00")
    ]


async def test_account_updater_and_expiring_events(kit: PayKit) -> None:
    customer = await kit.customer()
    method = await kit.method(customer)
    async with kit.db.unit_of_work() as session:
        from gateway.payments.models import PaymentMethod

        row = await session.get(PaymentMethod, method)
        assert row is not None
        pmid = row.provider_method_id
    await kit.webhook(
        {
            "id": "evt_upd",
            "type": "payment_method.updated",
            "method": {"id": pmid, "exp_month": 3, "exp_year": 2031},
        }
    )
    await kit.webhook({"id": "evt_exp", "type": "payment_method.expiring", "method": {"id": pmid}})
    await kit.relay()
    got = await kit.api.get(f"/v1/customers/{customer}/payment_methods/{method}")
    assert (got["exp_month"], got["exp_year"]) == (3, 2031)
    types = [e["type"] for e in await events(kit, "payment_method.")]
    assert types[-2:] == ["payment_method.updated", "payment_method.expiring"]


async def test_a_chargeback_after_a_partial_refund_reopens_the_invoice_for_the_rest(kit: PayKit) -> None:
    customer, invoice, payment = await paid_invoice(kit, 10_000)
    await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 4_000})
    async with kit.db.unit_of_work() as session:
        row = await session.get(Payment, payment["id"])
        assert row is not None
        provider_id = row.provider_payment_id
    chargeback = {
        "id": "evt_cb",
        "type": "payment.charged_back",
        "payment": {"id": provider_id, "status": "failed", "amount": 10_000, "currency": "EUR", "version": 2},
    }
    await kit.webhook(chargeback)
    await kit.webhook(chargeback)  # redelivered: applied once
    await kit.relay()
    await kit.relay()
    after = await kit.api.get(f"/v1/payments/{payment['id']}")
    assert (after["status"], after["decline_code"], after["amount_refunded"]) == (
        "failed",
        "charged_back",
        4_000,
    )
    reopened = await kit.api.get(f"/v1/invoices/{invoice['id']}")
    assert (reopened["status"], reopened["amount_paid"], reopened["amount_remaining"]) == (
        "open",
        4_000,
        6_000,
    )
    [event] = await events(kit, "invoice.reopened")
    assert (event["amount"], event["reason"], event["payment"], event["invoice"]["status"]) == (
        6_000,
        "charged_back",
        payment["id"],
        "open",
    )
    assert [e["type"] for e in await events(kit, "payment.charged_back")] == ["payment.charged_back"]
    # The charged-back payment refunds nothing more; the invoice credits at most what was not credited.
    refused = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 1}, expect=409)
    assert refused["code"] == "payment_not_refundable"
    over = await kit.api.post("/v1/credit_notes", {"invoice": invoice["id"], "amount": 6_001}, expect=409)
    assert (over["code"], over["creditable"]) == ("credit_exceeds_invoice", 6_000)
    # Audited, and collectable again: a second attempt charges the 6,000 still due.
    log = (await kit.api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    assert [(e["action"], e["target"]) for e in log if e["action"] == "invoice.reopened"] == [
        ("invoice.reopened", f"invoice:{invoice['id']}")
    ]
    paid = await kit.api.post(f"/v1/invoices/{invoice['id']}/pay", {}, expect=200)
    assert (paid["status"], paid["amount_paid"], paid["amount_remaining"]) == ("paid", 10_000, 0)
    second = (await kit.api.get("/v1/payments", params={"invoice": invoice["id"], "status": "succeeded"}))[
        "data"
    ]
    assert [(p["attempt"], p["amount"]) for p in second] == [(2, 6_000)]


async def test_a_refund_the_provider_refuses_releases_its_amount_and_is_visible(
    kit: PayKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.payments.port import ProviderRejected
    from tests.payments.fakes import FakeProvider

    _, _, payment = await paid_invoice(kit, 5_000)

    async def refuse(self: FakeProvider, request: object) -> None:
        raise ProviderRejected("the card account is closed", code="refund_failed")

    monkeypatch.setattr(FakeProvider, "refund", refuse)
    refused = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 3_000}, expect=409)
    assert refused["code"] == "refund_failed"
    after = await kit.api.get(f"/v1/payments/{payment['id']}")
    assert after["amount_refunded"] == 0  # released: refundable again
    [failed] = await events(kit, "payment.refund_failed")
    assert (failed["refund"]["amount"], failed["refund"]["status"], failed["payment"]["amount_refunded"]) == (
        3_000,
        "failed",
        0,
    )
    monkeypatch.undo()
    ok = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 5_000})
    assert (ok["amount"], ok["status"]) == (5_000, "succeeded")
