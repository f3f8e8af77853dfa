"""Casbin's own answer for a policy snapshot plus assignments: the reference the decision index must match.

pycasbin evaluates the matcher against every p line (about a millisecond a check), so this serves tests
and the admin's what-if tool, never the hot path. It loads everything in memory from the snapshot: the
database-backed adapter belongs to the policy store, and the oracle must answer for a snapshot that was
never committed (a what-if edit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import casbin
from casbin.persist.adapter import Adapter, load_policy_line

from gateway.authz.domain import Membership, PolicySnapshot, TenantStanding, casbin_lines

MODEL_PATH = Path(__file__).resolve().parents[2] / "policies" / "model.conf"


class _LinesAdapter(Adapter):  # type: ignore[misc]
    """Lines already in memory. Nothing saves through it: the oracle's policy is derived, not stored."""

    def __init__(self, lines: Sequence[tuple[str, ...]]) -> None:
        self._lines = lines

    def load_policy(self, model: Any) -> None:
        # load_policy_line appends without Model.add_policy's linear duplicate scan, which makes loading
        # quadratic in the number of assignment lines; casbin_lines never emits duplicates anyway.
        for line in self._lines:
            load_policy_line(", ".join(line), model)


class PolicyOracle:
    """`allowed(user, tenant, resource, action)` as Casbin's `enforce()` decides it."""

    def __init__(
        self,
        snapshot: PolicySnapshot,
        tenants: Iterable[TenantStanding],
        memberships: Iterable[Membership],
        model_path: Path = MODEL_PATH,
    ) -> None:
        self.version = snapshot.version
        model = casbin.Enforcer.new_model(path=str(model_path))
        self._enforcer = casbin.Enforcer(model, _LinesAdapter(casbin_lines(snapshot, tenants, memberships)))

    def allowed(self, user_id: str, tenant_id: str, resource: str, action: str) -> bool:
        return bool(self._enforcer.enforce(user_id, tenant_id, resource, action))

    def explain(self, user_id: str, tenant_id: str, resource: str, action: str) -> tuple[bool, list[str]]:
        """The decision and the policy line that settled it (empty if none matched), for the what-if tool."""
        allowed, rule = self._enforcer.enforce_ex(user_id, tenant_id, resource, action)
        return bool(allowed), list(rule)
