"""Where one batch of 1,000 usage events spends its time, in process on PostgreSQL (no HTTP): the body is
decoded the way the endpoint decodes it (msgspec into `UsageEventsIn`), then `IngestService.ingest` runs
in its own unit of work, as `POST /v1/usage_events` does. Prints cProfile's top functions by cumulative
and by own time, and the wall time per batch.

    .venv/bin/python benchmarks/profile_ingest.py [--batches 20] [--database-url URL]

THE DATABASE GIVEN IS EMPTIED (schema dropped and migrated): point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from sqlalchemy import text

from gateway.customers.models import Customer
from gateway.db.migrate import upgrade_head
from gateway.db.session import Database
from gateway.kernel.clock import SystemClock
from gateway.metering import schemas as s
from gateway.metering.repository import EventStore, MeterRepository
from gateway.metering.service import IngestService, MeterService

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tg_h_ingest"


def body(run: int, customers: list[str], size: int = 1000) -> bytes:
    now = datetime.now(UTC) - timedelta(minutes=1)
    events = [
        {
            "id": f"r{run}-{n}",
            "source": "prof",
            "type": "api_call",
            "subject": customers[n % len(customers)],
            "time": (now + timedelta(milliseconds=n)).isoformat(),
            "data": {"region": "eu" if n % 3 else "us", "tokens": n % 97},
        }
        for n in range(size)
    ]
    return json.dumps({"events": events}).encode()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TIERGATE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    db = Database(args.database_url)
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade_head(db)
    clock = SystemClock()
    now = clock.now()
    customers = [f"cus_prof{i}" for i in range(100)]
    async with db.unit_of_work() as session:
        for c in customers:
            session.add(Customer(id=c, name=c, created_at=now, updated_at=now))
        meters = MeterService(MeterRepository(session), clock)
        await meters.create(
            key="api_calls",
            name=None,
            event_type="api_call",
            aggregation="count",
            value_property=None,
            filters={},
            group_by=[],
        )
        await meters.create(
            key="tokens",
            name=None,
            event_type="api_call",
            aggregation="sum",
            value_property="tokens",
            filters={},
            group_by=["region"],
        )
    bodies = [body(n, customers) for n in range(args.batches + 2)]

    async def one(raw: bytes) -> None:
        data = msgspec.json.decode(raw, type=s.UsageEventsIn)
        items = [e.as_input() for e in data.events or []]
        async with db.unit_of_work() as session:
            service = IngestService(MeterRepository(session), EventStore(session), clock)
            await service.ingest(items)

    for raw in bodies[:2]:  # warm-up: connections, prepared statements
        await one(raw)
    profile = cProfile.Profile()
    began = time.perf_counter()
    profile.enable()
    for raw in bodies[2:]:
        await one(raw)
    profile.disable()
    elapsed = time.perf_counter() - began
    await db.dispose()
    print(f"{args.batches} batches of 1,000: {elapsed / args.batches * 1000:.1f} ms per batch under cProfile")
    stats = pstats.Stats(profile)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    asyncio.run(main())
