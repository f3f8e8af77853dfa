"""Everything that happens later happens on a clock: a merchant's test clock (`clock_ref`, moved by
`POST /v1/clocks/{ref}/advance`, which the adapter's `advance_clock` calls) or the sandbox's own clock
(a background ticker). Webhooks arrive signed at a real receiver."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.payments.port import ChargeRequest, ChargeStatus, DeclineCode, ProviderEvent, ProviderEventType
from tests.conftest import START
from tests.sandbox.harness import Sandbox

CLOCK = "clock_01TESTCLOCK"
DAY = timedelta(days=1)


def charge_on(
    customer: str, method: str, key: str, at: datetime, clock_ref: str | None = CLOCK
) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key=key,
        provider_customer_id=customer,
        provider_method_id=method,
        amount=4900,
        currency="EUR",
        description="Pro plan, January",
        at=at,
        clock_ref=clock_ref,
    )


async def events(sandbox: Sandbox, count: int) -> list[ProviderEvent]:
    received = await sandbox.receiver.wait_for(count)
    return [sandbox.provider.parse_webhook(r.body, r.headers) for r in received]


async def test_a_sepa_debit_settles_two_days_later_on_its_clock(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "sepa_ok", clock_ref=CLOCK, at=START.isoformat())
    started = await sandbox.provider.charge(charge_on(customer, method, "invoice:in_1:attempt:1", START))
    assert started.status is ChargeStatus.PROCESSING

    await sandbox.provider.advance_clock(CLOCK, START + DAY)
    assert (
        await sandbox.provider.retrieve_payment(started.provider_payment_id)
    ).status is ChargeStatus.PROCESSING
    assert sandbox.receiver.received == []  # nothing fell due yet
    # The wall clock moving does not settle a payment on a test clock.
    sandbox.clock.advance(timedelta(days=30))
    await asyncio.sleep(0.2)
    assert sandbox.receiver.received == []

    await sandbox.provider.advance_clock(CLOCK, START + 2 * DAY + timedelta(hours=5))
    # The advance answers after the webhooks of what fell due went out: no waiting needed.
    assert len(sandbox.receiver.received) == 1
    [settled] = await events(sandbox, 1)
    assert settled.type is ProviderEventType.PAYMENT_SUCCEEDED
    assert settled.occurred_at == START + 2 * DAY  # at its due time on the clock, not at the advance's end
    assert settled.payment is not None
    assert (settled.payment.status, settled.payment.version) == (ChargeStatus.SUCCEEDED, 2)
    clock = await sandbox.get(f"/v1/clocks/{CLOCK}")
    assert (clock["now"], clock["jobs_pending"]) == ("2026-01-03T05:00:00Z", 0)


async def test_a_sepa_chargeback_comes_seven_days_after_settlement(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "sepa_chargeback", clock_ref=CLOCK, at=START.isoformat())
    paid = await sandbox.provider.charge(charge_on(customer, method, "invoice:in_1:attempt:1", START))
    await sandbox.provider.advance_clock(CLOCK, START + 8 * DAY)
    assert [e.type for e in await events(sandbox, 1)] == [ProviderEventType.PAYMENT_SUCCEEDED]
    await sandbox.provider.advance_clock(CLOCK, START + 9 * DAY)
    _, charged_back = await events(sandbox, 2)
    assert charged_back.type is ProviderEventType.PAYMENT_CHARGED_BACK
    assert charged_back.occurred_at == START + 9 * DAY  # settled on day 2, charged back 7 days later
    assert charged_back.payment is not None and charged_back.payment.version == 3
    assert charged_back.payment.provider_payment_id == paid.provider_payment_id
    payment = await sandbox.get(f"/v1/payments/{paid.provider_payment_id}")
    assert (payment["charged_back"], payment["amount_charged_back"]) == (True, 4900)


async def test_the_account_updater_renews_one_card_and_announces_the_other_expiring(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    at = {"clock_ref": CLOCK, "at": START.isoformat()}
    renewable = await sandbox.method(customer, "card_updatable", **at)
    doomed = await sandbox.method(customer, "card_expiring", **at)
    # Both saved on 2026-01-01 expire at the end of April 2026 (valid through 04/2026).
    for method_id in (renewable, doomed):
        details = await sandbox.provider.get_method(method_id)
        assert (details.exp_month, details.exp_year) == (4, 2026)

    await sandbox.provider.advance_clock(CLOCK, datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    assert sandbox.receiver.received == []
    await sandbox.provider.advance_clock(CLOCK, datetime(2026, 4, 1, tzinfo=UTC))
    [expiring] = await events(sandbox, 1)
    assert expiring.type is ProviderEventType.METHOD_EXPIRING  # 30 days before 2026-05-01
    assert expiring.method is not None and expiring.method.provider_method_id == doomed
    assert expiring.occurred_at == datetime(2026, 4, 1, tzinfo=UTC)

    await sandbox.provider.advance_clock(CLOCK, datetime(2026, 5, 1, tzinfo=UTC))
    _, updated = await events(sandbox, 2)
    assert updated.type is ProviderEventType.METHOD_UPDATED
    assert updated.method is not None
    assert (updated.method.provider_method_id, updated.method.exp_month, updated.method.exp_year) == (
        renewable,
        4,
        2029,
    )
    # On the clock's May: the renewed card pays, the expired one is declined `expired_card`.
    may = datetime(2026, 5, 2, tzinfo=UTC)
    ok = await sandbox.provider.charge(charge_on(customer, renewable, "invoice:in_5:attempt:1", may))
    declined = await sandbox.provider.charge(charge_on(customer, doomed, "invoice:in_6:attempt:1", may))
    assert ok.status is ChargeStatus.SUCCEEDED
    assert (declined.status, declined.decline_code) == (ChargeStatus.FAILED, DeclineCode.EXPIRED_CARD)
    # Three years on, the renewed card is renewed again (the updater keeps going on the clock).
    await sandbox.provider.advance_clock(CLOCK, datetime(2029, 5, 1, tzinfo=UTC))
    *_, again = await events(sandbox, 5)
    assert again.type is ProviderEventType.METHOD_UPDATED
    assert again.method is not None and again.method.exp_year == 2032


async def test_clocks_are_kept_apart_and_never_go_back(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "sepa_ok", clock_ref=CLOCK, at=START.isoformat())
    await sandbox.provider.charge(charge_on(customer, method, "invoice:in_1:attempt:1", START))
    await sandbox.provider.advance_clock("clock_other", START + 10 * DAY)
    assert sandbox.receiver.received == []  # another clock's advance settles nothing of this one
    response = await sandbox.http.post(f"/v1/clocks/{CLOCK}/advance", json={"to": "2025-12-31T00:00:00Z"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "clock_cannot_go_back"
    naive = await sandbox.http.post(f"/v1/clocks/{CLOCK}/advance", json={"to": "2026-01-05T00:00:00"})
    assert naive.status_code == 400  # a time without a zone is ambiguous


async def test_without_a_clock_the_sandbox_own_clock_and_its_ticker_settle(sandbox: Sandbox) -> None:
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_async")
    started = await sandbox.provider.charge(
        charge_on(customer, method, "invoice:in_1:attempt:1", START, None)
    )
    assert started.status is ChargeStatus.PROCESSING
    await asyncio.sleep(0.2)
    assert sandbox.receiver.received == []
    sandbox.clock.advance(timedelta(seconds=10))  # the async-card delay of these tests' sandbox
    [settled] = await events(sandbox, 1)
    assert settled.type is ProviderEventType.PAYMENT_SUCCEEDED
    assert settled.occurred_at == START + timedelta(seconds=10)


async def test_a_year_of_monthly_charges_on_a_clock_runs_in_no_time(sandbox: Sandbox) -> None:
    months = 12
    customer = await sandbox.customer()
    method = await sandbox.method(customer, "card_ok", clock_ref=CLOCK, at=START.isoformat())
    statuses = []
    for month in range(months):
        at = datetime(2026 + month // 12, month % 12 + 1, 1, tzinfo=UTC)
        await sandbox.provider.advance_clock(CLOCK, at)
        result = await sandbox.provider.charge(charge_on(customer, method, f"invoice:m{month}:attempt:1", at))
        statuses.append(result.status)
    assert statuses == [ChargeStatus.SUCCEEDED] * months
    received = await events(sandbox, months)
    assert [e.occurred_at.month for e in received] == list(range(1, months + 1))
