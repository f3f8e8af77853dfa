"""Batch mode: inside a batch job (the billing run) repositories do not flush, and the rows the batch
creates are collected and written at its end, one Core INSERT per table, in foreign-key order, in the
batch's own transaction. `in_batch` is the one flag both depend on.

Why: the billing run creates an invoice, its lines and its events for each of thousands of subscriptions.
Through the ORM each new row is an instrumented object the unit of work inspects, sorts and turns into
parameters at flush; here a row is a plain dict and the table gets one executemany. The rows are the same,
in the same transaction, so a crash still rolls the whole batch back.

What may be buffered: rows created in the batch and not changed after `write_buffered`, and ORM objects
that nothing reads back from the database before the batch's end (the session does not autoflush, so a
query would not have seen them as pending objects either). The batch writes the buffer *before* its ORM
flush, so ORM rows may refer to buffered ones (an invoice item pointing at its new invoice), never the
other way round.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import FromClause, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from gateway.db.base import Base

_KEY = "bulk_rows"


def start_buffering(session: AsyncSession) -> None:
    session.info[_KEY] = {}


def stop_buffering(session: AsyncSession) -> None:
    """Drop whatever was not written (the batch failed and rolls back)."""
    session.info.pop(_KEY, None)


def in_batch(session: AsyncSession) -> bool:
    """Whether a batch is running on this session: repositories skip their flushes (one round trip per
    table per batch instead of several per row; nothing in a batch reads back what it wrote)."""
    return _KEY in session.info


def buffer_row(session: AsyncSession, table: FromClause, row: dict[str, Any]) -> bool:
    """Keep a row (column names as keys) for the batch's end; False when no batch is buffering."""
    buffer: dict[FromClause, list[Any]] | None = session.info.get(_KEY)
    if buffer is None:
        return False
    buffer.setdefault(table, []).append(row)
    return True


def buffer_object(session: AsyncSession, obj: DeclarativeBase) -> bool:
    """Keep a new ORM object, not added to the session; it is written as it stands at the batch's end.

    Its unset attributes take their columns' Python-side defaults now, as a flush would give them: the
    batch goes on using the object (an invoice credit pays in full is marked paid at the batch's end,
    `amount_paid += …`), and a default known only to the INSERT left it None until then."""
    buffer: dict[FromClause, list[Any]] | None = session.info.get(_KEY)
    if buffer is None:
        return False
    _fill_defaults(obj)
    buffer.setdefault(obj.__table__, []).append(obj)
    return True


def _fill_defaults(obj: Any) -> None:
    state = obj.__dict__
    for prop in obj.__mapper__.column_attrs:
        default = prop.columns[0].default
        if prop.key in state or default is None:
            continue
        if default.is_scalar:
            setattr(obj, prop.key, default.arg)
        elif default.is_callable:  # dict, list, ...: SQLAlchemy wraps them to take an execution context
            setattr(obj, prop.key, default.arg(None))


async def write_buffered(session: AsyncSession) -> int:
    """Insert every buffered row; returns how many. The buffer stays on (empty) until `stop_buffering`."""
    buffer: dict[FromClause, list[Any]] = session.info.get(_KEY) or {}
    written = 0
    for table in Base.metadata.sorted_tables:  # parents before children
        rows = buffer.pop(table, None)
        if not rows:
            continue
        # executemany needs one key set per statement: group rows by the columns they carry.
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            values = row if isinstance(row, dict) else _values(row)
            groups.setdefault(tuple(values), []).append(values)
        for group in groups.values():
            await session.execute(insert(table), group)
        written += len(rows)
    return written


# Per mapped class: (attribute key, column key) of each column attribute (`metadata_` → `metadata`).
_COLUMNS: dict[type, list[tuple[str, str]]] = {}


def _values(obj: Any) -> dict[str, Any]:
    """The column values an object carries. Attributes never set are left out, so the table's own
    defaults fill them, as an ORM flush would."""
    cls = type(obj)
    columns = _COLUMNS.get(cls)
    if columns is None:
        columns = _COLUMNS[cls] = [(p.key, p.columns[0].key) for p in obj.__mapper__.column_attrs]
    state = obj.__dict__
    return {name: state[key] for key, name in columns if key in state}
