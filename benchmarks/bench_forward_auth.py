"""What nginx `auth_request` to Tiergate adds per request (target: ≤ 1 ms p99 added, on loopback).

Same stack as tests/integration/test_nginx_forward_auth.py (real nginx, Tiergate under uvicorn, a stdlib
sample app). In one run, sequential keep-alive requests alternate between nginx proxying to the app with
`auth_request` and the same nginx proxying without it, so both see the same machine noise; the difference
of the percentiles is the cost of the check (subrequest + token verification + decision + quota count).
The authorizer alone (called directly, as nginx does) is shown for reference.

    .venv/bin/python benchmarks/bench_forward_auth.py [--requests 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.integration.test_nginx_forward_auth import Admin, Stack, bearer, nginx_binary  # noqa: E402

TARGET_P99_ADDED_MS = 1.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(call: Callable[[], httpx.Response], expect: int) -> float:
    start = time.perf_counter_ns()
    response = call()
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if response.status_code != expect:
        raise SystemExit(f"unexpected {response.status_code}: {response.text[:300]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    args = parser.parse_args()
    # httpx logs every request at INFO: formatting that inside the timed calls would swamp the result.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    binary = nginx_binary()
    if binary is None:
        print("nginx is not installed (apt-get install nginx)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp, Stack(Path(tmp), binary) as stack:
        admin = Admin(stack.tiergate)
        # Enterprise: unlimited API calls, so the benchmark measures checks, not a quota running out.
        _, tokens = admin.tenant("enterprise_monthly", editor="editor")
        admin.close()
        auth = bearer(tokens["editor"])
        direct_headers = {**auth, "X-Original-Method": "GET", "X-Original-URI": "/api/projects/42"}
        with (
            httpx.Client(base_url=stack.guarded) as guarded,
            httpx.Client(base_url=stack.plain) as plain,
            httpx.Client(base_url=stack.tiergate) as direct,
        ):
            cases: dict[str, Callable[[], httpx.Response]] = {
                "nginx → app (no auth_request)": lambda: plain.get("/api/projects/42", headers=auth),
                "nginx + auth_request → app": lambda: guarded.get("/api/projects/42", headers=auth),
                "authorizer alone (direct)": lambda: direct.get("/v1/authz/forward", headers=direct_headers),
            }
            samples: dict[str, list[float]] = {name: [] for name in cases}
            for i in range(args.warmup + args.requests):
                for name, call in cases.items():
                    elapsed = timed(call, 200)
                    if i >= args.warmup:
                        samples[name].append(elapsed)

    baseline = samples["nginx → app (no auth_request)"]
    base50, base99 = statistics.median(baseline), percentile(baseline, 0.99)
    print(f"\n{'what':<32} | {'n':>5} | {'p50 ms':>7} | {'p99 ms':>7} | added (p50 / p99)")
    print("-" * 84)
    for name, values in samples.items():
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        added = (
            "—"
            if values is baseline or name.startswith("authorizer")
            else f"+{p50 - base50:.3f} / +{p99 - base99:.3f}"
        )
        print(f"{name:<32} | {len(values):>5} | {p50:>7.3f} | {p99:>7.3f} | {added}")
    guarded_values = samples["nginx + auth_request → app"]
    added99 = percentile(guarded_values, 0.99) - base99
    verdict = "meets" if added99 <= TARGET_P99_ADDED_MS else "MISSES"
    print(f"\np99 added by auth_request: {added99:.3f} ms ({verdict} the ≤ {TARGET_P99_ADDED_MS} ms target)")
    return 0 if added99 <= TARGET_P99_ADDED_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
