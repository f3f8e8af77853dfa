"""Policy/lifecycle change visible on another replica: p50/p99 seconds, PostgreSQL + Redis.

Three replicas on one database: `a` takes the writes; `b` is nudged over Redis (its poll is 30 s, so
what it shows is the nudge path); `c` has no Redis and polls every second (the lost-message path).
Each round flips a tenant between Basic and Pro on `a` and times until `b` and `c` answer accordingly.

`--load` adds a concurrent write load while the rounds run: writers that each keep a transaction open
for a random 0-300 ms while inserting 50 outbox events, then commit (about 1,000 events/s, committing out
of seq order, so the change stream's horizon is always held back by some open transaction).

    TIERGATE_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    TIERGATE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/bench_propagation.py [--load]
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TIERGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TIERGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

from sqlalchemy import insert

from gateway.config import Settings
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.kernel.ids import new_id
from tests.entitlements.test_replicas import call, prepare_database
from tests.live import start

ROUNDS = 40
WRITERS = 3
EVENTS_PER_TRANSACTION = 50
OCCURRED_AT = datetime(2026, 1, 1, tzinfo=UTC)


class WriteLoad:
    """Background writers on their own event loop and thread (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.events = 0
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _writer(self, db: Database, rng: random.Random) -> None:
        while not self.stop.is_set():
            rows = [
                {
                    "event_id": new_id("evt"),
                    "type": "customer.updated",
                    "aggregate_type": "customer",
                    "aggregate_id": f"cus_load_{rng.randrange(20)}",
                    "tenant_id": f"cus_load_{rng.randrange(20)}",
                    "occurred_at": OCCURRED_AT,
                    "data": {},
                }
                for _ in range(EVENTS_PER_TRANSACTION)
            ]
            async with db.unit_of_work() as session:
                await session.execute(insert(OutboxEvent), rows)
                await asyncio.sleep(rng.uniform(0, 0.3))
            self.events += len(rows)

    async def _run(self) -> None:
        db = Database(self.url)
        try:
            await asyncio.gather(*(self._writer(db, random.Random(i)) for i in range(WRITERS)))
        finally:
            await db.dispose()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    url = prepare_database()
    redis_url = os.environ["TIERGATE_TEST_REDIS_URL"]
    base = {"database_url": url, "migrate_on_start": False, "scheduler_enabled": False}
    a = start(Settings(**base, redis_url=redis_url, entitlements_poll_seconds=30))
    b = start(Settings(**base, redis_url=redis_url, entitlements_poll_seconds=30))
    c = start(Settings(**base, redis_url="", entitlements_poll_seconds=1.0))
    load = WriteLoad(url) if "--load" in sys.argv else None
    started = time.monotonic()
    if load is not None:
        load.thread.start()
    try:
        customer = call(a, "POST", "/v1/customers", {"name": "Bench", "currency": "USD"})["id"]
        sub = call(a, "POST", "/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})["id"]
        check = {"customer": customer, "feature": "reporting_advanced"}
        times: dict[str, list[float]] = {"b (Redis nudge)": [], "c (poll 1 s, no Redis)": []}
        writes: list[float] = []
        for i in range(ROUNDS):
            want = i % 2 == 0
            price = "pro_monthly" if want else "basic_monthly"
            timing = "now"
            t0 = time.monotonic()
            call(a, "POST", f"/v1/subscriptions/{sub}/plan_change", {"price": price, "timing": timing})
            writes.append(time.monotonic() - t0)
            pending = {"b (Redis nudge)": b, "c (poll 1 s, no Redis)": c}
            while pending:
                for name, server in list(pending.items()):
                    if call(server, "POST", "/v1/check", check)["allowed"] == want:
                        times[name].append(time.monotonic() - t0)
                        del pending[name]
                if time.monotonic() - t0 > 10:
                    raise SystemExit(f"round {i}: not visible after 10 s on {sorted(pending)}")
                time.sleep(0.002)
        print(f"{'replica':28} | {'n':>3} | {'p50 ms':>8} | {'p99 ms':>8} | target p99")
        for name, values in times.items():
            target = "1000 ms" if name.startswith("b") else "5000 ms (lost message)"
            print(
                f"{name:28} | {len(values):>3} | {statistics.median(values) * 1000:8.1f} | "
                f"{pct(values, 0.99) * 1000:8.1f} | {target}"
            )
        print("(times include the write request itself on replica a)")
        print(
            f"{'  of which the write on a':28} | {len(writes):>3} | "
            f"{statistics.median(writes) * 1000:8.1f} | "
            f"{pct(writes, 0.99) * 1000:8.1f} |"
        )
        if load is not None:
            rate = load.events / (time.monotonic() - started)
            print(f"under load: {rate:.0f} outbox events/s committed by {WRITERS} concurrent writers")
    finally:
        if load is not None:
            load.stop.set()
            load.thread.join(timeout=10)
        for server in (a, b, c):
            server.stop()


if __name__ == "__main__":
    main()
