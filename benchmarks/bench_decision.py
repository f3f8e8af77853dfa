"""In-process permission decision at 10k tenants / 100k users (ARCHITECTURE.md §6: p50 ≤ 5 µs, p99 ≤ 25 µs).

Measures `DecisionIndex.decide` one call at a time (perf_counter_ns around each call, so the timer's own
~0.1 µs is included), and pycasbin's `enforce()` on the same policy and assignments as the same-run
baseline. Also checks that both agree on every request of the Casbin sample, and times building the
index and applying deltas (the change-stream path).

    .venv/bin/python benchmarks/bench_decision.py [--tenants 10000] [--users 100000] [--requests 200000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.authz.domain import (  # noqa: E402
    Membership,
    PolicySnapshot,
    RolePermission,
    TenantStanding,
    TenantStatus,
    parse_policy,
    policy_snapshot,
)
from gateway.authz.oracle import PolicyOracle  # noqa: E402
from gateway.entitlements.index import DecisionIndex, IndexDelta  # noqa: E402

PLAN_WEIGHTS = {"basic": 0.55, "pro": 0.33, "enterprise": 0.12}
STATUS_WEIGHTS = {
    TenantStatus.ACTIVE: 0.86,
    TenantStatus.TRIALING: 0.06,
    TenantStatus.PAST_DUE: 0.03,
    TenantStatus.PAUSED: 0.02,
    TenantStatus.CANCELED: 0.03,
}
ROLE_WEIGHTS = {"admin": 0.15, "editor": 0.35, "viewer": 0.5}
RESOURCES = [
    "projects",
    "projects/1042",
    "projects/1042/tasks/7",
    "reports",
    "reports/basic",
    "reports/advanced/q3",
    "reports/custom",
    "members",
    "members/88",
    "billing",
    "billing/invoices",
]
ACTIONS = ["read", "read", "read", "create", "update", "delete"]
Request = tuple[str, str, str, str]


def build_fixture(
    rng: random.Random, tenants: int, users: int
) -> tuple[PolicySnapshot, list[TenantStanding], list[Membership]]:
    demo = parse_policy((ROOT / "policies" / "demo_policy.csv").read_text(), version=1)
    standings = []
    custom: list[RolePermission] = []
    for n in range(tenants):
        tenant_id = f"ten_{n:05d}"
        plan = rng.choices(list(PLAN_WEIGHTS), weights=list(PLAN_WEIGHTS.values()))[0]
        status = rng.choices(list(STATUS_WEIGHTS), weights=list(STATUS_WEIGHTS.values()))[0]
        standings.append(TenantStanding(tenant_id, plan, status, access=rng.random() > 0.01))
        if plan == "enterprise" and rng.random() < 0.3:
            custom += [
                RolePermission("auditor", "billing", "read", tenant_id),
                RolePermission("auditor", "reports/*", "read", tenant_id),
            ]
    members = []
    per_tenant = users // tenants
    for n in range(users):
        tenant = standings[n % tenants].tenant_id
        if n < tenants:
            role = "owner"
        elif n // tenants == per_tenant - 1 and rng.random() < 0.3:
            role = "auditor"
        else:
            role = rng.choices(list(ROLE_WEIGHTS), weights=list(ROLE_WEIGHTS.values()))[0]
        members.append(Membership(f"usr_{n:06d}", tenant, role))
    return policy_snapshot([*demo.rules, *custom], version=1), standings, members


def requests(rng: random.Random, members: Sequence[Membership], count: int, tenants: int) -> list[Request]:
    out = []
    for _ in range(count):
        if rng.random() < 0.95:
            m = rng.choice(members)
            user, tenant = m.user_id, m.tenant_id
        else:  # strangers and unknown tenants: the cheap early exits must not flatter the numbers much
            user, tenant = f"usr_{rng.randrange(10**6):06d}x", f"ten_{rng.randrange(tenants * 2):05d}"
        out.append((user, tenant, rng.choice(RESOURCES), rng.choice(ACTIONS)))
    return out


def timed(fn: Callable[[str, str, str, str], object], reqs: Sequence[Request]) -> list[float]:
    clock = time.perf_counter_ns
    samples = []
    for user, tenant, resource, action in reqs:
        start = clock()
        fn(user, tenant, resource, action)
        samples.append((clock() - start) / 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--casbin-requests", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    policy, standings, members = build_fixture(rng, args.tenants, args.users)
    print(
        f"fixture: {args.tenants} tenants, {len({m.user_id for m in members})} users, "
        f"{len(policy.rules)} policy rules, python {sys.version.split()[0]}"
    )

    started = time.perf_counter()
    index = DecisionIndex.build(policy, tenants=standings, memberships=members, version=1)
    index_build_s = time.perf_counter() - started

    started = time.perf_counter()
    oracle = PolicyOracle(policy, standings, members)
    casbin_build_s = time.perf_counter() - started
    print(f"build: decision index {index_build_s:.2f} s, Casbin enforcer {casbin_build_s:.2f} s (same data)")

    reqs = requests(rng, members, args.requests, args.tenants)
    timed(index.decide, reqs[:20_000])  # warm caches and the interpreter's specializations
    index_us = timed(index.decide, reqs)

    started = time.perf_counter_ns()
    for user, tenant, resource, action in reqs:
        index.decide(user, tenant, resource, action)
    batch_mean_us = (time.perf_counter_ns() - started) / 1000 / len(reqs)

    casbin_reqs = reqs[: args.casbin_requests]
    casbin_us = timed(oracle.allowed, casbin_reqs)
    disagreements = sum(index.decide(*r).allowed is not oracle.allowed(*r) for r in casbin_reqs)

    # The change-stream path: one member's roles, then one tenant's plan, then a policy edit.
    member, first = members[args.tenants + 1], standings[0]
    upgraded = TenantStanding(first.tenant_id, "enterprise", TenantStatus.ACTIVE)
    deltas = {
        "apply: one member's roles": IndexDelta(
            2, member_roles={(member.user_id, member.tenant_id): frozenset({"admin"})}
        ),
        "apply: one tenant's plan": IndexDelta(2, tenants={first.tenant_id: upgraded}),
        "apply: policy edit (all tenants)": IndexDelta(
            2, policy=policy_snapshot(policy.rules[:-1], version=2)
        ),
    }

    enforce_p50, enforce_p99 = percentile(casbin_us, 0.5), percentile(casbin_us, 0.99)
    print()
    print(f"{'what':<34} | {'n':>7} | {'p50 µs':>10} | {'p99 µs':>10} | ratio vs enforce (p50 / p99)")
    print("-" * 100)
    for what, samples in (("DecisionIndex.decide", index_us), ("casbin enforce()", casbin_us)):
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        ratio = f"{p50 / enforce_p50:.4f} / {p99 / enforce_p99:.4f}"
        print(f"{what:<34} | {len(samples):>7} | {p50:10.2f} | {p99:10.2f} | {ratio}")
    what, mean_ratio = "DecisionIndex.decide, batch mean", f"{batch_mean_us / enforce_p50:.4f}"
    print(f"{what:<34} | {len(reqs):>7} | {batch_mean_us:10.2f} | {'-':>10} | {mean_ratio}")
    for what, delta in deltas.items():
        runs = []
        for _ in range(5):
            started = time.perf_counter_ns()
            index.apply(delta)
            runs.append((time.perf_counter_ns() - started) / 1000)
        median, worst = statistics.median(runs), max(runs)
        print(f"{what:<34} | {len(runs):>7} | {median:10.1f} | {worst:10.1f} | (5 runs: median, max)")

    print()
    print(f"index vs Casbin on the {len(casbin_reqs)} Casbin requests: {disagreements} disagreements")
    allowed = sum(index.decide(*r).allowed for r in reqs[:20_000]) / 20_000
    print(f"share allowed in the sample: {allowed:.0%}")
    ok = percentile(index_us, 0.5) <= 5 and percentile(index_us, 0.99) <= 25 and disagreements == 0
    print("target p50 <= 5 µs, p99 <= 25 µs:", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
