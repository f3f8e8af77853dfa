"""A tenant's decision bundle: what the index decides its (user, resource, action) requests from, as the
JSON an out-of-process decider reads (`GET /v1/entitlements/{customer}/decisions`; `clients/python`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from msgspec import Struct

from gateway.entitlements.index import TenantRules


class PermissionLine(Struct, array_like=True):
    resource: str
    action: str


class Gate(Struct, array_like=True):
    resource: str
    action: str
    feature: str


class DecisionBundle(Struct):
    object: Literal["decision_bundle"]
    customer: str
    plan: str | None  # the plan key `/v1/check` reports
    plan_node: str  # the plan version's node in the policy (`pro.v2`)
    access: bool
    inactive_since: datetime | None  # since when the subscription grants no access (with access false)
    members: dict[str, list[str]]  # user -> roles (sorted)
    allowed_roles: list[str]
    custom_roles: bool
    permissions: dict[str, list[PermissionLine]]  # catalog lines of the roles members hold, in order
    custom_permissions: dict[str, list[PermissionLine]]  # the tenant's own role lines, in order
    closed_gates: list[Gate]  # feature gates the plan leaves closed, in order
    features: list[str]  # boolean features the plan unlocks
    index_version: int  # the outbox position the bundle reflects (compare with change events)


def _lines(table: Mapping[str, tuple[tuple[str, str], ...]]) -> dict[str, list[PermissionLine]]:
    return {role: [PermissionLine(r, a) for r, a in lines] for role, lines in table.items()}


def decision_bundle(
    rules: TenantRules, *, plan_key: str | None, inactive_since: datetime | None, version: int
) -> DecisionBundle:
    return DecisionBundle(
        "decision_bundle",
        rules.tenant_id,
        plan_key,
        rules.plan,
        rules.access,
        inactive_since if not rules.access else None,
        {user: list(roles) for user, roles in sorted(rules.members.items())},
        sorted(rules.allowed_roles),
        rules.custom_roles,
        _lines(rules.permissions),
        _lines(rules.custom_permissions),
        [Gate(*g) for g in rules.closed_gates],
        sorted(rules.features),
        version,
    )
