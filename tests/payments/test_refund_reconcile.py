"""Refunds left `pending` are polled: reconciliation asks the provider (by refund id, or by re-sending the
same refund under the same key when the first call got no answer) and applies its word like the webhook
would. On the in-process fake provider; the API sets the first poll time, the job (60-second interval)
the next ones."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import select

from gateway.payments.models import Refund
from gateway.payments.port import ProviderUnavailable, RefundRequest, RefundResult, RefundStatus
from tests.payments.conftest import PayKit
from tests.payments.fakes import FakeProvider
from tests.payments.test_collection_api import events
from tests.payments.test_refunds_webhooks_reconcile import paid_invoice, runtime


async def refund_row(kit: PayKit, refund_id: str) -> Refund:
    async with kit.db.unit_of_work() as session:
        row = await session.scalar(select(Refund).where(Refund.id == refund_id))
        assert row is not None
        return row


def provider_says(kit: PayKit, status: RefundStatus) -> None:
    """The provider settles every refund it holds (what its dashboard would show now)."""
    world = kit.provider.world
    world.refunds = {key: dataclasses.replace(r, status=status) for key, r in world.refunds.items()}


async def test_a_pending_refund_that_succeeds_later_is_settled_by_polling(kit: PayKit) -> None:
    _, _, payment = await paid_invoice(kit, 5_000)
    kit.provider.world.refund_status = RefundStatus.PENDING
    refund = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 2_000})
    assert refund["status"] == "pending"
    jobs = runtime(kit)
    assert (await jobs.reconcile_refunds()).looked_at == 0  # not old enough yet
    kit.clock.advance(timedelta(minutes=10))  # past the API's reconcile interval
    still = await jobs.reconcile_refunds()
    assert (still.looked_at, still.settled, still.still_open) == (1, 0, 1)  # the provider: still pending
    assert (await jobs.reconcile_refunds()).looked_at == 0  # asked again only one interval later
    provider_says(kit, RefundStatus.SUCCEEDED)
    kit.clock.advance(timedelta(seconds=61))
    done = await jobs.reconcile_refunds()
    assert (done.looked_at, done.settled, done.still_open) == (1, 1, 0)
    assert (await refund_row(kit, refund["id"])).status == "succeeded"
    assert (await jobs.reconcile_refunds()).looked_at == 0
    refunded = await events(kit, "payment.refunded")
    assert [(e["refund"]["status"], e["refund"]["credit_note"]) for e in refunded] == [
        ("pending", refund["credit_note"]),
        ("succeeded", refund["credit_note"]),  # the same credit note: never a second one
    ]
    assert (await kit.api.get(f"/v1/payments/{payment['id']}"))["amount_refunded"] == 2_000


async def test_a_pending_refund_that_fails_later_releases_its_amount(kit: PayKit) -> None:
    _, _, payment = await paid_invoice(kit, 5_000)
    kit.provider.world.refund_status = RefundStatus.PENDING
    refund = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 3_000})
    provider_says(kit, RefundStatus.FAILED)
    kit.clock.advance(timedelta(minutes=10))
    result = await runtime(kit).reconcile_refunds()
    assert (result.looked_at, result.settled) == (1, 1)
    assert (await refund_row(kit, refund["id"])).status == "failed"
    assert (await kit.api.get(f"/v1/payments/{payment['id']}"))["amount_refunded"] == 0
    [failed] = await events(kit, "payment.refund_failed")
    assert (failed["refund"]["id"], failed["refund"]["amount"], failed["refund"]["status"]) == (
        refund["id"],
        3_000,
        "failed",
    )


async def test_a_refund_without_an_answer_is_re_sent_under_the_same_key_once(
    kit: PayKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, payment = await paid_invoice(kit, 5_000)
    real_refund = FakeProvider.refund

    async def no_answer(self: FakeProvider, request: RefundRequest) -> RefundResult:
        raise ProviderUnavailable("timeout")

    monkeypatch.setattr(FakeProvider, "refund", no_answer)
    refund = await kit.api.post(f"/v1/payments/{payment['id']}/refund", {"amount": 1_500})
    assert refund["status"] == "pending"
    row = await refund_row(kit, refund["id"])
    assert row.provider_refund_id is None
    monkeypatch.setattr(FakeProvider, "refund", real_refund)
    kit.clock.advance(timedelta(minutes=10))
    jobs = runtime(kit)
    first, second = await jobs.reconcile_refunds(), await jobs.reconcile_refunds()
    assert (first.settled, second.looked_at) == (1, 0)
    settled = await refund_row(kit, refund["id"])
    [(key, answer)] = kit.provider.world.refunds.items()  # one refund at the provider
    assert (key, settled.status, settled.provider_refund_id) == (
        row.idempotency_key,
        "succeeded",
        answer.provider_refund_id,
    )
