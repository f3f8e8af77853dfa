"""The SDK's local decision mode against the server's own in-process index, on the same tenants.

`tiergate_client.TenantRules.decide` (the Python SDK, from each tenant's decision bundle as the server
serves it) next to `DecisionIndex.decide` (what `/v1/check` consults), one call at a time on the same
requests, with a check that every answer agrees. The network hop the SDK removes is measured by
`benchmarks/bench_http_check.py` (a /v1/check round trip); this measures what replaces it.

    .venv/bin/python benchmarks/bench_sdk_local.py [--tenants 2000] [--users 20000] [--requests 200000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "clients" / "python"))

import msgspec  # noqa: E402
from tiergate_client.decide import TenantRules  # noqa: E402

from benchmarks.bench_decision import build_fixture, percentile, requests, timed  # noqa: E402
from gateway.entitlements.bundle import decision_bundle  # noqa: E402
from gateway.entitlements.index import DecisionIndex  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=2000)
    parser.add_argument("--users", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=200_000)
    args = parser.parse_args()
    rng = random.Random(7)
    policy, standings, members = build_fixture(rng, args.tenants, args.users)
    index = DecisionIndex.build(policy, tenants=standings, memberships=members, version=1)

    started = time.perf_counter()
    local: dict[str, TenantRules] = {}
    for standing in standings:
        exported = index.export(standing.tenant_id)
        assert exported is not None
        bundle = decision_bundle(exported, plan_key=exported.plan, inactive_since=None, version=1)
        local[standing.tenant_id] = TenantRules(json.loads(msgspec.json.encode(bundle)))
    load_seconds = time.perf_counter() - started

    reqs = [r for r in requests(rng, members, args.requests, args.tenants) if r[1] in local]

    def sdk(user: str, tenant: str, resource: str, action: str) -> object:
        return local[tenant].decide(user, resource, action)

    for user, tenant, resource, action in reqs[:20000]:
        server, mine = (
            index.decide(user, tenant, resource, action),
            local[tenant].decide(user, resource, action),
        )
        assert (server.allowed, server.reason, server.role) == (mine.allowed, mine.reason, mine.role)

    base = timed(index.decide, reqs)
    ours = timed(sdk, reqs)
    print(
        f"{len(local)} tenant bundles decoded and compiled in {load_seconds * 1000:.0f} ms; "
        f"{len(reqs)} requests, 20,000 compared: all agree"
    )
    print(f"{'decider':<38}{'p50 µs':>10}{'p99 µs':>10}{'ratio p50':>12}")
    for name, samples in (
        ("server index (DecisionIndex.decide)", base),
        ("SDK local (TenantRules.decide)", ours),
    ):
        ratio = percentile(samples, 0.5) / percentile(base, 0.5)
        print(f"{name:<38}{percentile(samples, 0.5):>10.2f}{percentile(samples, 0.99):>10.2f}{ratio:>11.2f}x")


if __name__ == "__main__":
    main()
