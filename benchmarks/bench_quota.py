"""Quota reserve latency: RedisQuotaStore against the in-process store and a bare Redis PING, in one run.

    .venv/bin/python benchmarks/bench_quota.py [--redis-url URL] [-n 5000]

Target (ARCHITECTURE.md §6): Redis reserve p99 <= 1 ms, atomic. PING is the floor any one-round-trip
operation pays on this machine and client, so "ratio vs PING" shows what the Lua script and our Python
wrapper add on top of the network; the memory store shows the wrapper alone. Operations run one at a
time on one connection, so this measures latency, not throughput.

Writes only under a uuid key prefix and deletes those keys afterwards; never flushes the database.
Exits 1 when the target is missed, so it can gate a pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import cast
from uuid import uuid4

import redis.asyncio

from gateway.entitlements.quotas import MemoryQuotaStore, QuotaStore, RedisQuotaStore

TARGET_P99_US = 1_000.0
WARMUP = 500
# Far from the period boundaries of any real clock, so the metered keys outlive the run (see quotas.py).
PERIOD_START = datetime(2100, 1, 1, tzinfo=UTC)
PERIOD_END = datetime(2100, 2, 1, tzinfo=UTC)


def percentile(sorted_ns: list[int], fraction: float) -> float:
    """Nearest-rank percentile, in microseconds."""
    rank = max(1, round(fraction * len(sorted_ns)))
    return sorted_ns[rank - 1] / 1_000


async def measure(operations: dict[str, Callable[[int], Awaitable[object]]], n: int) -> dict[str, list[int]]:
    """Sorted per-operation timings in ns. The operations take turns within each iteration, so a burst
    of load from elsewhere on the machine lands on all of them alike and the ratios stay comparable;
    measured one after another, a noisy few seconds would be charged to whichever row ran then."""
    # Warm-up loads the Lua scripts (EVALSHA falls back to SCRIPT LOAD once), opens the pooled
    # connection and lets CPython specialise the hot path; none of that is what a steady replica pays.
    for i in range(WARMUP):
        for operation in operations.values():
            await operation(i)
    timings: dict[str, list[int]] = {what: [] for what in operations}
    for i in range(n):
        for what, operation in operations.items():
            started = time.perf_counter_ns()
            await operation(i)
            timings[what].append(time.perf_counter_ns() - started)
    return {what: sorted(values) for what, values in timings.items()}


def ping_op(client: redis.asyncio.Redis) -> Callable[[int], Awaitable[object]]:
    async def op(_: int) -> object:
        # redis-py types `ping` for its sync and async clients at once; this client is async.
        return await cast("Awaitable[object]", client.ping())

    return op


def reserve_op(store: QuotaStore, tenant: str, n: int) -> Callable[[int], Awaitable[object]]:
    limit = n + WARMUP  # every reserve is admitted: the common case, and the one that writes

    async def op(_: int) -> object:
        result = await store.reserve(tenant, "projects", 1, limit)
        assert result.allowed
        return result

    return op


def consume_op(store: QuotaStore, tenant: str, n: int) -> Callable[[int], Awaitable[object]]:
    limit = n + WARMUP

    async def op(_: int) -> object:
        result = await store.consume(
            tenant, "api_calls", 1, limit, period_start=PERIOD_START, period_end=PERIOD_END
        )
        assert result.allowed
        return result

    return op


async def run(redis_url: str, n: int) -> int:
    client = redis.asyncio.Redis.from_url(redis_url)
    prefix = f"tgbench-{uuid4().hex}"
    redis_store = RedisQuotaStore(client, prefix=prefix)
    tenant = "bench-tenant"
    try:
        operations = {
            "redis PING": ping_op(client),
            "redis reserve": reserve_op(redis_store, tenant, n),
            "redis consume": consume_op(redis_store, tenant, n),
            "memory reserve": reserve_op(MemoryQuotaStore(), tenant, n),
        }
        rows = list((await measure(operations, n)).items())
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    ping_p50, ping_p99 = percentile(rows[0][1], 0.50), percentile(rows[0][1], 0.99)
    python = sys.version.split()[0]
    print(f"Redis {redis_url}, {n} sequential ops each (interleaved) after {WARMUP} warm-up, Python {python}")
    print()
    print(f"| {'what':<15} | {'n':>5} | {'p50 µs':>8} | {'p99 µs':>8} | {'ratio vs PING (p50 / p99)':>25} |")
    print(f"|{'-' * 17}|{'-' * 6}:|{'-' * 9}:|{'-' * 9}:|{'-' * 26}:|")
    for what, timings in rows:
        p50, p99 = percentile(timings, 0.50), percentile(timings, 0.99)
        ratio = f"{p50 / ping_p50:.2f} / {p99 / ping_p99:.2f}"
        print(f"| {what:<15} | {len(timings):>5} | {p50:>8.1f} | {p99:>8.1f} | {ratio:>25} |")

    reserve_p99 = percentile(rows[1][1], 0.99)
    met = reserve_p99 <= TARGET_P99_US
    print()
    verdict = "met" if met else "MISSED"
    print(f"target: redis reserve p99 <= {TARGET_P99_US:.0f} µs -> {reserve_p99:.1f} µs: {verdict}")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    # Same variable the service reads (Settings.redis_url), so the benchmark hits the deployment's Redis.
    default_url = os.environ.get("TIERGATE_REDIS_URL") or "redis://127.0.0.1:6379/0"
    parser.add_argument("--redis-url", default=default_url)
    parser.add_argument("-n", type=int, default=5_000)
    args = parser.parse_args()
    return asyncio.run(run(args.redis_url, args.n))


if __name__ == "__main__":
    sys.exit(main())
