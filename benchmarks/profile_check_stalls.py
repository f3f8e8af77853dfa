"""Where the check path's tail comes from: which background work overlaps the slow requests under load.

Serves the instrumented app (`_stall_probe.py`: the real Tiergate plus timestamps of every request, every
API-key cache fill, engine catch-up, anti-entropy pass, revocation sync, relay pass, garbage collection and
event-loop block) on the benchmark's seeded SQLite database, drives `/v1/check` and `/v1/authz/forward`
with wrk, and prints, per suspect, how many of the slow requests it overlapped. A suspect that overlaps
(nearly) every slow request and few fast ones is the cause; one that runs as often without slow requests
around it is not.

    .venv/bin/python benchmarks/profile_check_stalls.py [--duration 15] [--slow-ms 50] [--server uvicorn]
        [--rate 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_http_check import (  # noqa: E402
    Case,
    cases,
    fixture,
    prepare_database,
    run_wrk,
    serve,
    server_env,
)


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def analyse(
    name: str, data: dict[str, list[list[object]]], window: tuple[float, float], slow_ms: float
) -> None:
    requests = [
        (str(p), float(s), float(e)) for p, s, e in data["requests"] if window[0] <= float(s) <= window[1]
    ]
    events = [
        (str(k), float(s), float(e))
        for k, s, e in data["events"]
        if float(e) >= window[0] and float(s) <= window[1]
    ]
    if not requests:
        print(f"{name}: no requests recorded")
        return
    latencies = sorted((e - s) * 1000 for _, s, e in requests)
    p = lambda q: latencies[min(len(latencies) - 1, round(q * (len(latencies) - 1)))]  # noqa: E731
    slow = [(s, e) for _, s, e in requests if (e - s) * 1000 >= slow_ms]
    fast = [(s, e) for _, s, e in requests if (e - s) * 1000 < slow_ms]
    print(
        f"\n== {name}: {len(requests):,} requests in the window, in-app latency p50 {p(0.5):.2f} ms, "
        f"p99 {p(0.99):.2f} ms, max {latencies[-1]:.1f} ms; {len(slow)} slower than {slow_ms:g} ms "
        f"({100 * len(slow) / len(requests):.2f} %)"
    )
    by_kind: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for kind, s, e in events:
        by_kind[kind].append((s, e))
    header = (
        f"  {'suspect':<18} | {'runs':>5} | {'p50 ms':>7} | {'max ms':>7} | "
        f"{'slow reqs overlapped':>21} | {'fast reqs overlapped':>21}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for kind in sorted(by_kind):
        spans = sorted(by_kind[kind])
        durations = [(e - s) * 1000 for s, e in spans]
        hit_slow = sum(1 for r in slow if any(overlaps(r, sp) for sp in spans))
        hit_fast = sum(1 for r in fast if any(overlaps(r, sp) for sp in spans))
        print(
            f"  {kind:<18} | {len(spans):>5} | {statistics.median(durations):>7.2f} | "
            f"{max(durations):>7.1f} | "
            f"{hit_slow:>6} of {len(slow):<6} {100 * hit_slow / max(1, len(slow)):>5.1f}% | "
            f"{hit_fast:>6} {100 * hit_fast / max(1, len(fast)):>5.1f}% of fast"
        )
    unexplained = [r for r in slow if not any(overlaps(r, (s, e)) for _, s, e in events)]
    print(f"  slow requests overlapping none of the suspects: {len(unexplained)}")
    # Episodes: slow requests whose intervals chain together.
    episodes: list[list[tuple[float, float]]] = []
    for r in sorted(slow):
        if episodes and r[0] <= max(e for _, e in episodes[-1]):
            episodes[-1].append(r)
        else:
            episodes.append([r])
    print(f"  {len(episodes)} stall episodes; the first 8:")
    for ep in episodes[:8]:
        start, end = min(s for s, _ in ep), max(e for _, e in ep)
        kinds = Counter(k for k, s, e in events if overlaps((start, end), (s, e)))
        print(
            f"    t={start - window[0]:7.3f}s  {1000 * (end - start):6.1f} ms  {len(ep):>3} slow reqs  "
            "overlapped: " + (", ".join(f"{k}×{n}" for k, n in kinds.most_common()) or "nothing")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--slow-ms", type=float, default=50.0)
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--what", default="/v1/check permission,/v1/authz/forward")
    parser.add_argument("--rate", type=int, default=0, help="requests/s offered (0: as many as taken)")
    parser.add_argument(
        "--before", action="store_true", help="full stack, heap not frozen (the key-cache fix stays in)"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="profile-stalls-") as directory:
        tmp = Path(directory)
        url, customers = prepare_database(tmp / "bench.sqlite3")
        env = server_env(tmp, url)
        if args.before:
            env.update(TIERGATE_PROBE_PLAIN="1", TIERGATE_LEAN_DECISIONS="false")
        for case_name in args.what.split(","):
            out = tmp / "probe.json"
            env["TIERGATE_PROBE_OUT"] = str(out)
            server = serve(args.server, "_stall_probe:create_app", True, 1, env, tmp)
            try:
                fx = fixture(server.url, customers)
                case: Case = next(c for c in cases(fx) if c.name == case_name)
                pace = args.connections * 1000 / args.rate if args.rate else None
                run_wrk(server.url, case, args, tmp, 2, pace)
                # The window: the measured run only (perf_counter is system-wide monotonic on Linux).
                begin = time.perf_counter()
                result = run_wrk(server.url, case, args, tmp, args.duration, pace)
                end = time.perf_counter()
            finally:
                server.stop()
            print(
                f"\nwrk {case_name}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
                f"p99 {result.p99_ms:.2f} ms"
            )
            analyse(case_name, json.loads(out.read_text()), (begin, end), args.slow_ms)
            os.unlink(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
