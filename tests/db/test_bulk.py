"""Batch writes (gateway.db.bulk): what a batch buffers is written at its end exactly as the ORM would
have written it, parents before children, with the table defaults for what was never set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text

from gateway.billing.models import Invoice, InvoiceLine
from gateway.customers.models import Customer
from gateway.db.bulk import buffer_object, buffer_row, start_buffering, stop_buffering, write_buffered
from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database
from gateway.kernel.events import DomainEvent

AT = datetime(2026, 3, 1, tzinfo=UTC)


def invoice(invoice_id: str, **values: object) -> Invoice:
    return Invoice(
        id=invoice_id,
        tenant_id="cus_1",
        status="draft",
        billing_reason="manual",
        currency="USD",
        created_at=AT,
        updated_at=AT,
        **values,
    )


def line(line_id: str, invoice_id: str) -> dict[str, object]:
    return {
        "id": line_id,
        "tenant_id": "cus_1",
        "invoice_id": invoice_id,
        "position": 0,
        "kind": "one_time",
        "description": "setup",
        "amount": 500,
        "net_amount": 500,
    }


async def test_buffered_rows_are_written_at_the_end_parents_first_with_defaults(db: Database) -> None:
    async with db.unit_of_work() as session:
        session.add(Customer(id="cus_1", name="Acme", created_at=AT, updated_at=AT))
        await session.flush()
        start_buffering(session)
        # The child row is buffered before its parent: the write still puts invoices first.
        assert buffer_row(session, InvoiceLine.__table__, line("il_1", "in_1"))
        first = invoice("in_1", total=500, metadata_={"k": "v"})
        assert buffer_object(session, first)
        assert buffer_object(session, invoice("in_2"))  # other columns set: a second INSERT group
        first.number = "TG-2026-000001"  # changed after buffering: written as it stands at the end
        await record_event(session, DomainEvent("invoice.created", "invoice", "in_1", AT, data={"n": 1}))
        before = await session.scalar(text("SELECT count(*) FROM invoices"))
        assert before == 0 and first not in session
        assert await write_buffered(session) == 4
        stop_buffering(session)

    async with db.unit_of_work() as session:
        rows = {i.id: i for i in await session.scalars(select(Invoice))}
        assert rows["in_1"].number == "TG-2026-000001" and rows["in_1"].metadata_ == {"k": "v"}
        # Never set: the column defaults, as an ORM flush fills them.
        assert rows["in_2"].total == 0 and rows["in_2"].metadata_ == {} and rows["in_2"].version == 1
        assert rows["in_2"].legal_mentions == [] and rows["in_2"].auto_advance is True
        lines = list(await session.scalars(select(InvoiceLine)))
        assert [(x.id, x.invoice_id, x.tax_amount, x.proration) for x in lines] == [
            ("il_1", "in_1", 0, False)
        ]
        events = list(await session.scalars(select(OutboxEvent)))
        assert [(e.type, e.data) for e in events] == [("invoice.created", {"n": 1})]


async def test_without_a_batch_nothing_is_buffered(db: Database) -> None:
    async with db.unit_of_work() as session:
        assert not buffer_row(session, InvoiceLine.__table__, line("il_1", "in_1"))
        assert not buffer_object(session, invoice("in_1"))
        row = await record_event(session, DomainEvent("x.y", "x", "x_1", AT, data={}))
        assert row is not None and row in session


async def test_a_failed_batch_writes_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as session:
            start_buffering(session)
            await record_event(session, DomainEvent("x.y", "x", "x_1", AT, data={}))
            raise RuntimeError("the batch fails before its end")
    async with db.unit_of_work() as session:
        assert await session.scalar(text("SELECT count(*) FROM outbox")) == 0
