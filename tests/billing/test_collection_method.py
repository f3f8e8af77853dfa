"""Collection method per subscription and per invoice (issue 10): `charge_automatically` invoices are due
at finalisation, as before; `send_invoice` invoices fall due `days_until_due` days later, carry the
issuer's bank details and an ISO 11649 creditor reference derived from their number, print them, and
raise `invoice.overdue` exactly once when their due date passes unpaid (on a test clock at the due
instant; on the wall clock from the billing run)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from stdnum import iso11649

from gateway.billing.domain import BillingReason
from gateway.billing.reference import creditor_reference, formatted
from gateway.billing.run import billing_run, sweep_overdue
from gateway.billing.wiring import BillingConfig, billing_services
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.kernel.clock import FrozenClock
from gateway.subscriptions.domain import CollectionMethod
from tests.conftest import Api

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def on_clock(api: Api, **customer: Any) -> tuple[str, str]:
    clock = await api.post("/v1/test_clocks", {"frozen_time": iso(START), "name": "collection"})
    body = {"name": "Enterprise Co", "currency": "USD", "test_clock": clock["id"], **customer}
    created = await api.post("/v1/customers", body)
    return clock["id"], created["id"]


async def advance(api: Api, clock_id: str, to: datetime) -> None:
    await api.post(f"/v1/test_clocks/{clock_id}/advance", {"frozen_time": iso(to)}, expect=201)


async def invoices_of(api: Api, subscription_id: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/invoices", params={"subscription": subscription_id, "limit": 100})
    return sorted(page["data"], key=lambda i: i["created_at"])


async def raw(api: Api, path: str) -> Any:
    response = await api.client.get(path, headers=api._headers(None))
    assert response.status_code == 200, response.text
    return response


async def overdue_events(api: Api, invoice_id: str) -> list[dict[str, Any]]:
    page = await api.get("/v1/events", params={"aggregate": invoice_id, "limit": 100})
    return [e for e in page["data"] if e["type"] == "invoice.overdue"]


# -- the reference ---------------------------------------------------------------------------------
def test_creditor_reference_matches_the_iso_11649_example() -> None:
    # ISO 11649's own example: RF18 5390 0754 7034.
    assert creditor_reference("539007547034") == "RF18539007547034"
    assert formatted("RF18539007547034") == "RF18 5390 0754 7034"
    assert creditor_reference("TG-2026-000001") == "RF58TG2026000001"


@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=25))
def test_every_reference_validates_and_keeps_the_number(number: str) -> None:
    body = number.replace("-", "")
    if not body or len(body) > 21:
        with pytest.raises(ValueError):
            creditor_reference(number)
        return
    reference = creditor_reference(number)
    assert iso11649.is_valid(reference)
    assert reference[4:] == body


# -- subscriptions -----------------------------------------------------------------------------------
async def test_default_collection_is_automatic_and_due_at_once(api: Api, demo: Any) -> None:
    _, customer = await on_clock(api)
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    assert (sub["collection_method"], sub["days_until_due"]) == ("charge_automatically", None)
    [invoice] = await invoices_of(api, sub["id"])
    assert invoice["collection_method"] == "charge_automatically"
    assert invoice["due_date"] == invoice["finalized_at"]
    assert invoice["payment_reference"] is None and invoice["payment_instructions"] is None
    html = (await raw(api, f"/v1/invoices/{invoice['id']}/html")).text
    assert "Pay by bank transfer" not in html


async def test_send_invoice_subscription_invoice_carries_terms_reference_and_bank_details(
    api: Api, demo: Any
) -> None:
    _, customer = await on_clock(api)
    sub = await api.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "price": "basic_monthly",
            "collection_method": "send_invoice",
            "days_until_due": 14,
        },
    )
    assert (sub["collection_method"], sub["days_until_due"]) == ("send_invoice", 14)
    [invoice] = await invoices_of(api, sub["id"])
    assert invoice["status"] == "open"
    assert invoice["collection_method"] == "send_invoice" and invoice["days_until_due"] == 14
    assert when(invoice["finalized_at"]) == START
    assert when(invoice["due_date"]) == START + timedelta(days=14)
    reference = invoice["payment_reference"]
    assert reference == creditor_reference(invoice["number"]) and iso11649.is_valid(reference)
    assert invoice["payment_instructions"] == {
        "type": "bank_transfer",
        "account_name": "Tiergate Demo Ltd",
        "iban": "IE29AIBK93115212345678",
        "bic": "AIBKIE2D",
        "reference": reference,
    }
    html = (await raw(api, f"/v1/invoices/{invoice['id']}/html")).text
    assert "Pay by bank transfer" in html
    assert formatted(reference) in html and "IE29 AIBK 9311 5212 3456 78" in html
    assert "Mar 16, 2026" in html or "16 Mar 2026" in html or "2026-03-16" in html  # the due date
    pdf = await raw(api, f"/v1/invoices/{invoice['id']}/pdf")
    assert pdf.content.startswith(b"%PDF")


async def test_send_invoice_without_days_takes_the_setting(api: Api, demo: Any) -> None:
    _, customer = await on_clock(api)
    sub = await api.post(
        "/v1/subscriptions",
        {"customer": customer, "price": "basic_monthly", "collection_method": "send_invoice"},
    )
    [invoice] = await invoices_of(api, sub["id"])
    assert invoice["days_until_due"] == 30
    assert when(invoice["due_date"]) == START + timedelta(days=30)


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        # days only with send_invoice (the domain's rule)
        ({"days_until_due": 10}, "invalid_collection_method", "days_until_due"),
        (
            {"collection_method": "charge_automatically", "days_until_due": 10},
            "invalid_collection_method",
            "days_until_due",
        ),
        # out of range or unknown (the request schema)
        ({"collection_method": "send_invoice", "days_until_due": 366}, "validation_failed", "days_until_due"),
        ({"collection_method": "send_invoice", "days_until_due": -1}, "validation_failed", "days_until_due"),
        ({"collection_method": "by_pigeon"}, "validation_failed", "collection_method"),
    ],
)
async def test_bad_collection_terms_are_refused_and_create_nothing(
    api: Api, demo: Any, body: dict[str, Any], code: str, field: str
) -> None:
    _, customer = await on_clock(api)
    problem = await api.call(
        "POST",
        "/v1/subscriptions",
        json={"customer": customer, "price": "basic_monthly", **body},
        expect=422,
    )
    assert (problem["code"], problem["field"]) == (code, field)
    listed = await api.get("/v1/subscriptions", params={"customer": customer})
    assert listed["data"] == []


async def test_switching_a_subscription_to_send_invoice_applies_from_the_next_invoice(
    api: Api, demo: Any
) -> None:
    clock, customer = await on_clock(api)
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    refused = await api.patch(f"/v1/subscriptions/{sub['id']}", {"days_until_due": 10}, expect=422)
    assert refused["code"] == "invalid_collection_method"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["version"] == sub["version"]

    updated = await api.patch(
        f"/v1/subscriptions/{sub['id']}", {"collection_method": "send_invoice", "days_until_due": 10}
    )
    assert (updated["collection_method"], updated["days_until_due"]) == ("send_invoice", 10)
    assert updated["version"] == sub["version"] + 1
    # The days alone can change later; going back to automatic drops them.
    assert (await api.patch(f"/v1/subscriptions/{sub['id']}", {"days_until_due": 20}))["days_until_due"] == 20

    await advance(api, clock, datetime(2026, 4, 2, 11, 0, tzinfo=UTC))
    first, renewal = await invoices_of(api, sub["id"])
    assert first["collection_method"] == "charge_automatically"  # finalised before: unchanged
    assert renewal["collection_method"] == "send_invoice" and renewal["days_until_due"] == 20
    assert when(renewal["due_date"]) == datetime(2026, 4, 22, 10, 0, tzinfo=UTC)

    back = await api.patch(f"/v1/subscriptions/{sub['id']}", {"collection_method": "charge_automatically"})
    assert (back["collection_method"], back["days_until_due"]) == ("charge_automatically", None)


# -- invoices ----------------------------------------------------------------------------------------
async def test_a_manual_invoice_overrides_the_collection_method(api: Api, demo: Any) -> None:
    _, customer = await on_clock(api)
    await api.post(
        "/v1/invoice_items",
        {"customer": customer, "amount": 12_000, "currency": "USD", "description": "Onboarding"},
    )
    invoice = await api.post(
        "/v1/invoices",
        {
            "customer": customer,
            "auto_advance": True,
            "collection_method": "send_invoice",
            "days_until_due": 0,
        },
    )
    assert invoice["collection_method"] == "send_invoice" and invoice["days_until_due"] == 0
    assert invoice["due_date"] == invoice["finalized_at"]
    assert invoice["payment_reference"] == creditor_reference(invoice["number"])
    bad = await api.post(
        "/v1/invoices", {"customer": customer, "days_until_due": 5, "auto_advance": True}, expect=422
    )
    assert bad["field"] == "days_until_due"


# -- overdue -----------------------------------------------------------------------------------------
async def test_overdue_is_raised_once_at_the_due_instant_on_a_test_clock(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api)
    sub = await api.post(
        "/v1/subscriptions",
        {
            "customer": customer,
            "price": "basic_monthly",
            "collection_method": "send_invoice",
            "days_until_due": 7,
        },
    )
    [invoice] = await invoices_of(api, sub["id"])
    due = when(invoice["due_date"])
    await advance(api, clock, due)  # at the due instant it is due, not yet overdue
    assert await overdue_events(api, invoice["id"]) == []

    await advance(api, clock, due + timedelta(days=3))
    [event] = await overdue_events(api, invoice["id"])
    assert when(event["occurred_at"]) == due
    assert event["data"]["invoice"]["payment_reference"] == invoice["payment_reference"]
    again = await api.get(f"/v1/invoices/{invoice['id']}")
    assert when(again["overdue_at"]) == due and again["status"] == "open"

    await advance(api, clock, due + timedelta(days=10))
    assert len(await overdue_events(api, invoice["id"])) == 1


async def test_a_paid_or_automatic_invoice_never_becomes_overdue(api: Api, demo: Any) -> None:
    clock, customer = await on_clock(api)
    sub = await api.post(
        "/v1/subscriptions",
        {"customer": customer, "price": "basic_monthly", "collection_method": "send_invoice"},
    )
    [invoice] = await invoices_of(api, sub["id"])
    await api.post(f"/v1/invoices/{invoice['id']}/pay", {"paid_out_of_band": True}, expect=200)
    _, other = await on_clock(api)
    auto = await api.post("/v1/subscriptions", {"customer": other, "price": "basic_monthly"})
    [auto_invoice] = await invoices_of(api, auto["id"])
    await advance(api, clock, START + timedelta(days=31, hours=1))
    assert await overdue_events(api, invoice["id"]) == []
    assert await overdue_events(api, auto_invoice["id"]) == []


# -- the wall clock: the billing run sweeps ----------------------------------------------------------
async def _wall_clock_invoice(db: Database, clock: FrozenClock, days: int) -> str:
    async with db.unit_of_work() as session:
        await seed_catalog(session, clock)
    async with db.unit_of_work() as session:
        customer = await CustomerService(CustomerRepository(session), clock).create(
            name="Wall Co", currency="USD", country="US"
        )
        services = billing_services(session, clock, BillingConfig())
        await services.invoices.add_item(
            customer, currency="USD", amount=5_000, description="Consulting", at=clock.now()
        )
        lines, items = await services.invoices.pending_lines(customer, "USD")
        invoice = await services.invoices.create_draft(
            customer,
            "USD",
            lines,
            at=clock.now(),
            reason=BillingReason.MANUAL,
            items=items,
            collection_method=CollectionMethod.SEND_INVOICE,
            days_until_due=days,
        )
        await services.invoices.finalize(invoice, customer, clock.now())
        return invoice.id


async def _overdue_rows(db: Database, invoice_id: str) -> list[OutboxEvent]:
    async with db.unit_of_work() as session:
        query = select(OutboxEvent).where(
            OutboxEvent.aggregate_id == invoice_id, OutboxEvent.type == "invoice.overdue"
        )
        return list((await session.scalars(query)).all())


async def test_the_billing_run_raises_overdue_once_on_the_wall_clock(db: Database) -> None:
    clock = FrozenClock(START)
    invoice_id = await _wall_clock_invoice(db, clock, days=5)
    clock.set(START + timedelta(days=5))
    assert (await billing_run(db, clock, BillingConfig())).overdue == 0
    clock.set(START + timedelta(days=6))
    first = await billing_run(db, clock, BillingConfig())
    second = await billing_run(db, clock, BillingConfig())
    assert (first.overdue, second.overdue) == (1, 0)
    [event] = await _overdue_rows(db, invoice_id)
    assert event.occurred_at == START + timedelta(days=5)


async def test_two_concurrent_sweeps_raise_overdue_once(db: Database) -> None:
    clock = FrozenClock(START)
    ids = [await _wall_clock_invoice(db, clock, days=1)]
    async with db.unit_of_work() as session:  # more invoices of other customers, due the same day
        services = billing_services(session, clock, BillingConfig())
        for n in range(5):
            customer = await CustomerService(CustomerRepository(session), clock).create(
                name=f"Wall {n}", currency="USD", country="US"
            )
            await services.invoices.add_item(
                customer, currency="USD", amount=1_000 + n, description="Setup", at=clock.now()
            )
            lines, items = await services.invoices.pending_lines(customer, "USD")
            invoice = await services.invoices.create_draft(
                customer,
                "USD",
                lines,
                at=clock.now(),
                reason=BillingReason.MANUAL,
                items=items,
                collection_method=CollectionMethod.SEND_INVOICE,
                days_until_due=1,
            )
            await services.invoices.finalize(invoice, customer, clock.now())
            ids.append(invoice.id)
    later = START + timedelta(days=2)
    counts = await asyncio.gather(
        sweep_overdue(db, clock, BillingConfig(), at=later, batch_size=2),
        sweep_overdue(db, clock, BillingConfig(), at=later, batch_size=2),
    )
    assert sum(counts) == 6
    for invoice_id in ids:
        assert len(await _overdue_rows(db, invoice_id)) == 1
