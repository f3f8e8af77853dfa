"""Migrations run up and down on both databases; every state change writes its event in the same
transaction (a refused change writes none)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from gateway.all_models import Base
from gateway.db.migrate import downgrade, upgrade_head
from gateway.db.session import Database
from gateway.metering.partitions import is_partition_table
from tests.conftest import POSTGRES_URL, Api, sibling_database


@pytest.mark.parametrize("backend", ["sqlite", *(["postgres"] if POSTGRES_URL else [])])
async def test_migrations_upgrade_and_downgrade(backend: str, tmp_path: Path) -> None:
    if backend == "postgres":
        name, url = sibling_database("migrations")
        admin = Database(POSTGRES_URL, pooled=False)
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}"
    db = Database(url, pooled=False)

    def tables(sync_conn: Any) -> set[str]:
        names = set(inspect(sync_conn).get_table_names()) - {"alembic_version"}
        return {n for n in names if not is_partition_table(n)}  # usage_events' partitions

    await upgrade_head(db)
    async with db.engine.connect() as conn:
        assert await conn.run_sync(tables) == set(Base.metadata.tables)
    await downgrade(db, "base")
    async with db.engine.connect() as conn:
        assert await conn.run_sync(tables) == set()
    await upgrade_head(db)
    await db.dispose()


async def test_each_change_writes_its_event(api: Api, demo: Any) -> None:
    customer = await api.post("/v1/customers", {"name": "Evented", "currency": "USD"})
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
    await api.post(f"/v1/subscriptions/{sub['id']}/quantity", {"quantity": 3})
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True})
    events = (await api.get("/v1/events", params={"aggregate": sub["id"]}))["data"]
    assert [e["type"] for e in events] == [
        "subscription.created",
        "subscription.quantity_changed",
        "subscription.cancel_scheduled",
    ]
    versions = [e["data"]["subscription"]["version"] for e in events]
    assert versions == sorted(versions) and len(set(versions)) == 3
    # A refused change (409) writes no event.
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": True}, expect=409)
    assert len((await api.get("/v1/events", params={"aggregate": sub["id"]}))["data"]) == 3
