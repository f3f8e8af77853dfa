"""What the per-request observation middleware (request id + latency histogram) costs on a bare route.

    .venv/bin/python benchmarks/bench_metrics_overhead.py [-n 20000]

Two Litestar apps with the same bare GET route, one without middleware (the baseline) and one with
`gateway.observability.requests.observe_requests`, called in process through ASGI (no sockets, so the
difference is the middleware alone, not noise from a server). Rounds alternate between the two to share
the machine's load. Target: the middleware adds at most 15 µs p50 per request (a bare Litestar request
costs ~40-60 µs here, a /v1/check several times that).
Exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from litestar import Litestar, get

from gateway.observability.requests import observe_requests

TARGET_ADDED_P50_US = 15.0


@get("/bare/{item:str}", sync_to_thread=False)
def bare(item: str) -> dict[str, str]:
    return {"item": item}


SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/bare/x1",
    "raw_path": b"/bare/x1",
    "root_path": "",
    "query_string": b"",
    "headers": [(b"host", b"bench"), (b"x-request-id", b"bench-1")],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 80),
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: Any) -> None:
    return None


async def timed(app: Litestar, n: int) -> list[int]:
    out = []
    for _ in range(n):
        started = time.perf_counter_ns()
        await app(dict(SCOPE), receive, send)  # type: ignore[arg-type]
        out.append(time.perf_counter_ns() - started)
    return out


def pct(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(fraction * len(ordered)) - 1)] / 1000


async def main(n: int) -> int:
    plain = Litestar([bare], openapi_config=None)
    observed = Litestar([bare], middleware=[observe_requests], openapi_config=None)
    await timed(plain, 2000)
    await timed(observed, 2000)
    base: list[int] = []
    with_mw: list[int] = []
    for _ in range(10):
        base += await timed(plain, n // 10)
        with_mw += await timed(observed, n // 10)
    rows = [("bare route (baseline)", base), ("bare route + observe_requests", with_mw)]
    print(f"{'app':34} {'p50 µs':>8} {'p99 µs':>8} {'ratio p50':>10}")
    for name, values in rows:
        print(
            f"{name:34} {pct(values, 0.5):8.1f} {pct(values, 0.99):8.1f}"
            f" {pct(values, 0.5) / pct(base, 0.5):10.2f}"
        )
    added = pct(with_mw, 0.5) - pct(base, 0.5)
    print(f"added per request: {added:.1f} µs p50 (target <= {TARGET_ADDED_P50_US:g} µs)")
    return 0 if added <= TARGET_ADDED_P50_US else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=20000)
    sys.exit(asyncio.run(main(parser.parse_args().n)))
