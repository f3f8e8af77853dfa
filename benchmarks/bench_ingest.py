"""Usage-event ingestion on PostgreSQL over HTTP: batches of 100 and of 1,000 events with 10 % duplicates,
sent by concurrent keep-alive clients to `tiergate serve` (a real subprocess), against a same-run
baseline of plain row-by-row INSERTs of the same events.

    .venv/bin/python benchmarks/bench_ingest.py [--events 200000] [--database-url URL]
        [--batch-sizes 100,1000] [--clients 8] [--workers 2] [--baseline-events 20000]

Target (issue 12): >= 20,000 events/s sustained on the 2-core machine, acknowledged only after commit.

What is measured: wall time from the first request to the last answer (every batch answered 200 and
every event 201 or 200 duplicate), events/s counted over all events sent (duplicates included, as a
client sends them), and the latency of one batch (p50, p99). The bodies are encoded before the clock
starts; the clients run in this process (they share the 2 cores with the server, as any client on this
machine would). The baseline is what PostgreSQL charges for the same rows one statement at a time:
`INSERT INTO bench_plain_events … VALUES (…)` per event on one connection, committed per 100 rows, into
a plain table with the same columns and primary key (no dedup key, no roll-ups).

The machine's load average is printed before and after: other work on the machine slows both sides.
THE DATABASE GIVEN IS EMPTIED (schema dropped and migrated): point it at a scratch database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import text

from gateway.db.migrate import upgrade_head
from gateway.db.session import Database

TARGET = 20_000
KEY = "tg_sk_bench_ingest_0123456789"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tg_h_meter_ingest"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def reset(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await upgrade_head(db)


async def start_server(url: str, workers: int) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    env = {
        **os.environ,
        "TIERGATE_DATABASE_URL": url,
        "TIERGATE_REDIS_URL": "",
        "TIERGATE_BOOTSTRAP_API_KEY": KEY,
        "TIERGATE_MIGRATE_ON_START": "false",
        "TIERGATE_SCHEDULER_ENABLED": "false",
        "TIERGATE_RELAY_ENABLED": "false",
        "TIERGATE_LOG_LEVEL": "WARNING",
        "TIERGATE_SECRET_KEY": os.environ.get(
            "TIERGATE_SECRET_KEY", "bench:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
        ),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from gateway.cli import main; main()",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for _ in range(1200):
            try:
                if (await client.get(f"{base}/health/live")).status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise SystemExit("tiergate serve did not start")


def make_batches(run: str, customers: list[str], events: int, size: int, duplicates: float) -> list[bytes]:
    """Batches of `size` where `duplicates` of each batch repeat events already sent earlier."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    fresh_per_batch = size - int(size * duplicates)
    bodies, sent, n = [], 0, 0
    previous: list[dict[str, object]] = []
    while sent < events:
        batch: list[dict[str, object]] = []
        for _ in range(fresh_per_batch):
            batch.append(
                {
                    "id": f"{run}-{n}",
                    "source": "bench",
                    "type": "api_call",
                    "subject": customers[n % len(customers)],
                    "time": (now + timedelta(milliseconds=n % 50_000)).isoformat(),
                    "data": {"region": "eu" if n % 3 else "us", "tokens": n % 97},
                }
            )
            n += 1
        batch += (previous or batch)[: size - len(batch)]
        previous = batch
        bodies.append(json.dumps({"events": batch}).encode())
        sent += len(batch)
    return bodies


async def ingest(base: str, bodies: list[bytes], clients: int) -> tuple[float, list[float], int]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    counted = 0
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def client() -> None:
        nonlocal counted
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
            while not queue.empty():
                body = queue.get_nowait()
                began = time.perf_counter()
                response = await http.post("/v1/usage_events", content=body)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    raise SystemExit(f"batch refused: {response.status_code} {response.text[:300]}")
                result = response.json()
                if result["rejected"]:
                    raise SystemExit(f"events rejected: {result['data'][:3]}")
                counted += result["accepted"]

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - began, latencies, counted


async def baseline(db: Database, customers: list[str], events: int) -> float:
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE IF EXISTS bench_plain_events"))
        await conn.execute(
            text(
                "CREATE TABLE bench_plain_events (tenant_id varchar(40), time timestamptz, "
                "source varchar(200), event_id varchar(200), type varchar(200), subject varchar(200), "
                "data jsonb, received_at timestamptz, voided_at timestamptz, "
                "PRIMARY KEY (tenant_id, time, source, event_id))"
            )
        )
    statement = text(
        "INSERT INTO bench_plain_events "
        "(tenant_id, time, source, event_id, type, subject, data, received_at) "
        "VALUES (:t, :ti, 'bench', :i, 'api_call', :t, CAST(:d AS jsonb), :r)"
    )
    now = datetime.now(UTC)
    began = time.perf_counter()
    for start in range(0, events, 100):
        async with db.engine.begin() as conn:
            for n in range(start, min(start + 100, events)):
                c = customers[n % len(customers)]
                data = json.dumps({"region": "eu", "tokens": n % 97})
                await conn.execute(
                    statement,
                    {"t": c, "ti": now + timedelta(microseconds=n), "i": f"p{n}", "d": data, "r": now},
                )
    elapsed = time.perf_counter() - began
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE bench_plain_events"))
    return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("TIERGATE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-sizes", default="100,1000")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--duplicates", type=float, default=0.10)
    parser.add_argument("--baseline-events", type=int, default=20_000)
    args = parser.parse_args()

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    db = Database(args.database_url)
    await reset(db)
    server, base = await start_server(args.database_url, args.workers)
    rows = []
    try:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
            customers = [
                (await http.post("/v1/customers", json={"name": f"C{i}"})).json()["id"]
                for i in range(args.customers)
            ]
            for body in (
                {"key": "api_calls", "event_type": "api_call", "aggregation": "count"},
                {
                    "key": "tokens",
                    "event_type": "api_call",
                    "aggregation": "sum",
                    "value_property": "tokens",
                    "group_by": ["region"],
                },
            ):
                assert (await http.post("/v1/meters", json=body)).status_code == 201
            # Warm-up: every worker's connections, prepared statements and caches.
            await ingest(base, make_batches("warm", customers, 4000, 100, 0.0), args.clients)
        for size in [int(s) for s in args.batch_sizes.split(",")]:
            bodies = make_batches(f"b{size}", customers, args.events, size, args.duplicates)
            sent = sum(body.count(b'"id"') for body in bodies)
            elapsed, latencies, counted = await ingest(base, bodies, args.clients)
            rows.append((f"HTTP batches of {size:,}", sent, counted, elapsed, latencies))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        await server.wait()
    plain = await baseline(db, customers, args.baseline_events)
    async with db.engine.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*) FROM usage_events"))).scalar_one()
    await db.dispose()

    base_rate = args.baseline_events / plain
    print(
        f"\n{'what':<28} {'events sent':>12} {'counted':>9} {'seconds':>8} {'events/s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}"
    )
    print(
        f"{'row-by-row INSERT (baseline)':<28} {args.baseline_events:>12,} {args.baseline_events:>9,} "
        f"{plain:>8.2f} {base_rate:>9,.0f} {'':>8} {'':>8} {'1.00x':>12}"
    )
    ok = True
    for what, sent, counted, elapsed, latencies in rows:
        rate = sent / elapsed
        ok = ok and rate >= TARGET
        print(
            f"{what:<28} {sent:>12,} {counted:>9,} {elapsed:>8.2f} {rate:>9,.0f} "
            f"{pct(latencies, 0.5):>8.1f} {pct(latencies, 0.99):>8.1f} {rate / base_rate:>11.2f}x"
        )
    print(f"\nrows in usage_events: {stored:,} (warm-up 4,000 + distinct events of each run)")
    print(f"target: >= {TARGET:,} events/s -> {'met' if ok else 'NOT met'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (2 cores)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
