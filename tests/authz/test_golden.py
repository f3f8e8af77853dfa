"""Golden decision tables: every row is replayed against Casbin (the reference) and the decision index.

`expected` is checked against both; `reason` only against the index, since Casbin has no reasons.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gateway.authz.domain import Assignments, PolicySnapshot, parse_assignments, parse_policy
from gateway.authz.oracle import PolicyOracle
from gateway.entitlements.index import DecisionIndex, Reason

POLICIES = Path(__file__).resolve().parents[2] / "policies"
GOLDEN = POLICIES / "golden"
COLUMNS = ["user", "tenant", "resource", "action", "expected", "reason"]


def _load_rows() -> list[tuple[str, dict[str, str]]]:
    rows = []
    for path in sorted(GOLDEN.glob("decisions_*.csv")):
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == COLUMNS, f"{path.name}: header must be {','.join(COLUMNS)}"
            for line, row in enumerate(reader, start=2):
                rows.append((f"{path.stem}:{line}", row))
    return rows


ROWS = _load_rows()


@pytest.fixture(scope="module")
def policy() -> PolicySnapshot:
    parts = ("demo_policy.csv", "golden/tenant_roles.csv", "golden/plan_features.csv")
    text = "\n".join((POLICIES / part).read_text() for part in parts)
    return parse_policy(text, version=1)


@pytest.fixture(scope="module")
def assignments() -> Assignments:
    return parse_assignments((GOLDEN / "assignments.csv").read_text())


@pytest.fixture(scope="module")
def oracle(policy: PolicySnapshot, assignments: Assignments) -> PolicyOracle:
    return PolicyOracle(policy, assignments.tenants, assignments.memberships)


@pytest.fixture(scope="module")
def index(policy: PolicySnapshot, assignments: Assignments) -> DecisionIndex:
    return DecisionIndex.build(
        policy, tenants=assignments.tenants, memberships=assignments.memberships, version=7
    )


@pytest.mark.parametrize("row", [row for _, row in ROWS], ids=[row_id for row_id, _ in ROWS])
def test_golden_row(row: dict[str, str], oracle: PolicyOracle, index: DecisionIndex) -> None:
    request = (row["user"], row["tenant"], row["resource"], row["action"])
    expected = row["expected"] == "allow"

    assert oracle.allowed(*request) is expected, "Casbin disagrees with the golden table"
    decision = index.decide(*request)
    assert (decision.allowed, decision.reason) == (expected, row["reason"])
    assert decision.version == 7


def test_golden_tables_are_well_formed_and_cover_every_reason() -> None:
    assert len(ROWS) >= 30
    for row_id, row in ROWS:
        assert row["expected"] in ("allow", "deny"), row_id
        assert (row["expected"] == "allow") is (row["reason"] == Reason.ALLOWED), row_id
    assert {row["reason"] for _, row in ROWS} == set(Reason)
