"""Policy/lifecycle change visible on another replica: p50/p99 seconds, PostgreSQL + Redis.

Three replicas on one database: `a` takes the writes; `b` is nudged over Redis (its poll is 30 s, so
what it shows is the nudge path); `c` has no Redis and polls every second (the lost-message path).
Each round flips a tenant between Basic and Pro on `a` and times until `b` and `c` answer accordingly.

    TIERGATE_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test \\
    TIERGATE_TEST_REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/bench_propagation.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TIERGATE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
os.environ.setdefault("TIERGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

from gateway.config import Settings
from tests.entitlements.test_replicas import call, prepare_database
from tests.live import start

ROUNDS = 40


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
    try:
        customer = call(a, "POST", "/v1/customers", {"name": "Bench", "currency": "USD"})["id"]
        sub = call(a, "POST", "/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})["id"]
        check = {"customer": customer, "feature": "reporting_advanced"}
        times: dict[str, list[float]] = {"b (Redis nudge)": [], "c (poll 1 s, no Redis)": []}
        for i in range(ROUNDS):
            want = i % 2 == 0
            price = "pro_monthly" if want else "basic_monthly"
            timing = "now"
            t0 = time.monotonic()
            call(a, "POST", f"/v1/subscriptions/{sub}/plan_change", {"price": price, "timing": timing})
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
    finally:
        for server in (a, b, c):
            server.stop()


if __name__ == "__main__":
    main()
