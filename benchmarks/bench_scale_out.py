"""Scale-out: decisions/s with 1 replica vs 3 replicas of `tiergate serve` on one PostgreSQL + Redis.

Three real `tiergate serve` processes (granian, one worker each, production settings: no migrations on
start, Redis for quotas and change nudges) on a scratch database seeded with the demo catalog. The load
is `POST /v1/check/batch` (100 checks per request: features and permissions of one tenant) from one
asyncio client with `--connections` requests in flight, spread by client-side round robin over the
replicas of the row. Rows: 1 replica, 3 replicas, then 1 replica again (the machine is shared: the two
1-replica rows bracket the 3-replica row, and the ratio is against their mean). Load average beside each.

    TIERGATE_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    TIERGATE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python benchmarks/bench_scale_out.py [--seconds 8] [--connections 24]

On one machine the replicas share its cores with the client, so the ratio is bounded by the core count
(2 on the CI machine); on separate hosts behind a load balancer it is bounded by PostgreSQL and Redis,
which a decision does not touch (the index is in each replica's memory).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TIERGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TIERGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

import httpx

from tests.test_scale_out import HEADERS, Replica, call, prepare_database, replicas_on

BATCH = 100
FEATURES = ["reporting_basic", "reporting_advanced", "sso", "projects", "api_calls"]


def batch_body(customer: str, user: str) -> dict[str, object]:
    checks: list[dict[str, object]] = []
    for i in range(BATCH):
        if i % 2:
            checks.append({"customer": customer, "feature": FEATURES[i % len(FEATURES)]})
        else:
            checks.append({"customer": customer, "user": user, "resource": f"projects/{i}", "action": "read"})
    return {"checks": checks}


async def load(
    urls: list[str], body: dict[str, object], seconds: float, connections: int
) -> tuple[int, list[float]]:
    """Requests sent round robin over `urls` for `seconds`; returns (decisions, request latencies)."""
    clients = {url: httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=30) for url in urls}
    order = itertools.cycle(urls)
    latencies: list[float] = []
    decisions = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal decisions
        while time.monotonic() < deadline:
            url = next(order)
            t0 = time.perf_counter()
            response = await clients[url].post("/v1/check/batch", json=body)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200:
                raise SystemExit(f"{url}: {response.status_code} {response.text[:300]}")
            decisions += BATCH

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.monotonic() - started
    for client in clients.values():
        await client.aclose()
    return int(decisions / elapsed), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=24)
    args = parser.parse_args()
    url = prepare_database("bench_scale_out")
    replicas: list[Replica] = replicas_on(url, os.environ["TIERGATE_TEST_REDIS_URL"], 3)
    try:
        r1 = replicas[0]
        customer = call(r1, "POST", "/v1/customers", {"name": "Bench", "currency": "USD"})["id"]
        call(r1, "POST", "/v1/subscriptions", {"customer": customer, "price": "pro_monthly"})
        member = {"email": "owner@bench.example", "role": "owner"}
        user = call(r1, "POST", f"/v1/customers/{customer}/members", member)["user"]
        body = batch_body(customer, user)
        probe = {"customer": customer, "user": user, "resource": "projects", "action": "read"}
        for replica in replicas:  # every replica knows the tenant before the clock starts
            deadline = time.monotonic() + 10
            while not call(replica, "POST", "/v1/check", probe)["allowed"]:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{replica.url} never saw the tenant")
                time.sleep(0.05)
        asyncio.run(load([r.url for r in replicas], body, 2.0, args.connections))  # warm-up
        rows: list[tuple[str, int, list[float], float]] = []
        for name, chosen in (
            ("1 replica", replicas[:1]),
            ("3 replicas", replicas),
            ("1 replica again", replicas[:1]),
        ):
            rate, latencies = asyncio.run(load([r.url for r in chosen], body, args.seconds, args.connections))
            rows.append((name, rate, latencies, os.getloadavg()[0]))
        baseline = statistics.mean([rows[0][1], rows[2][1]])
        print(
            f"POST /v1/check/batch x{BATCH}, {args.connections} in flight, "
            f"{args.seconds:.0f} s per row, {os.cpu_count()} cores"
        )
        print(
            f"{'replicas':16} | {'decisions/s':>11} | {'p50 ms':>7} | {'p99 ms':>7} | {'ratio':>5} | load avg"
        )
        for name, rate, latencies, loadavg in rows:
            print(
                f"{name:16} | {rate:>11,} | {statistics.median(latencies) * 1000:7.1f} | "
                f"{pct(latencies, 0.99) * 1000:7.1f} | {rate / baseline:5.2f} | {loadavg:.2f}"
            )
        print("ratio: against the mean of the two 1-replica rows (same run)")
    finally:
        for replica in replicas:
            replica.kill()


if __name__ == "__main__":
    main()
