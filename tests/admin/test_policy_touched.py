"""What a policy draft touches (gateway/admin/pages_policies.touched): the resources and actions whose
decisions may change, so the what-if asks every member of the named customers about exactly those."""

from __future__ import annotations

from gateway.admin.pages_policies import touched
from gateway.authz.domain import FeatureGate, NodeKind, RolePermission, TierGrant

EDIT = RolePermission("editor", "projects/*", "update")
VIEW = RolePermission("viewer", "*", "read")
GATE = FeatureGate("reporting_advanced", "reports/advanced/*", "*")
CURRENT = [TierGrant("pro", NodeKind.ROLE, "editor"), EDIT, VIEW, GATE]


def test_an_added_permission_touches_its_resource_with_a_sample_name() -> None:
    draft = [*CURRENT, RolePermission("viewer", "projects/*", "update")]
    assert touched(CURRENT, draft) == [("projects/example", "update")]


def test_a_plan_losing_a_role_touches_every_permission_of_that_role() -> None:
    draft = [r for r in CURRENT if not isinstance(r, TierGrant)]
    assert touched(CURRENT, draft) == [("projects/example", "update")]


def test_a_removed_gate_touches_its_resources_read_for_any_action() -> None:
    draft = [r for r in CURRENT if r != GATE]
    assert touched(CURRENT, draft) == [("reports/advanced/example", "read")]


def test_an_unchanged_policy_touches_nothing() -> None:
    assert touched(CURRENT, list(reversed(CURRENT))) == []
