"""Deciding from a tenant's decision bundle, with the algorithm of Tiergate's decision index.

`GET /v1/entitlements/{customer}/decisions` hands out what the server's index decides a tenant's
(user, resource, action) requests from; `TenantRules.decide` evaluates it exactly as
`gateway/entitlements/index.py` does, in the same order (a differential test against a live server
proves the answers agree):

1. a user with no role in the tenant        -> unknown_subject
2. a subscription without access            -> subscription_inactive
3. a role the plan allows grants it         -> allowed, unless a closed feature gate covers it
                                               (feature_not_in_plan)
4. only a role the plan does not allow would -> role_not_allowed
5. nothing grants it                        -> no_permission

Resources match like Casbin's keyMatch: exact, or a pattern ending in `*` matches by prefix; action `*`
matches every action. The first matching line names the granting role, so line order matters and is kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ANY = "*"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    customer: str
    index_version: int
    user: str | None = None
    plan: str | None = None
    role: str | None = None
    stale: bool = False
    inactive_since: str | None = None


class _Matcher:
    __slots__ = ("_exact", "_prefixes")

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        exact: dict[str, dict[str, str]] = {}
        prefixes: dict[str, dict[str, str]] = {}
        for pattern, action, label in entries:
            star = pattern.find("*")
            if star < 0:
                exact.setdefault(pattern, {}).setdefault(action, label)
            else:
                prefixes.setdefault(pattern[:star], {}).setdefault(action, label)
        self._exact = exact
        self._prefixes = tuple(prefixes.items())

    def match(self, resource: str, action: str) -> str | None:
        actions = self._exact.get(resource)
        if actions is not None:
            label = actions.get(action) or actions.get(ANY)
            if label is not None:
                return label
        for prefix, actions in self._prefixes:
            if resource.startswith(prefix):
                label = actions.get(action) or actions.get(ANY)
                if label is not None:
                    return label
        return None


def _lines(raw: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, tuple[tuple[str, str], ...]]:
    return {role: tuple((line[0], line[1]) for line in lines) for role, lines in raw.items()}


class TenantRules:
    """One tenant's bundle, compiled. Immutable once built; replaced whole when the tenant changes."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.customer: str = bundle["customer"]
        self.plan: str | None = bundle["plan"]
        self.access: bool = bundle["access"]
        self.inactive_since: str | None = bundle.get("inactive_since")
        self.index_version: int = bundle["index_version"]
        self.members: dict[str, tuple[str, ...]] = {u: tuple(r) for u, r in bundle["members"].items()}
        self.features = frozenset(bundle["features"])
        self._allowed = frozenset(bundle["allowed_roles"])
        self._custom_roles: bool = bundle["custom_roles"]
        self._catalog = _lines(bundle["permissions"])
        self._custom = _lines(bundle["custom_permissions"])
        gates = [(g[0], g[1], g[2]) for g in bundle["closed_gates"]]
        self._gates = _Matcher(gates) if gates else None
        self._grants: dict[tuple[str, ...], tuple[_Matcher, _Matcher]] = {}
        # Decisions are interned per (user, reason, role), as the server's index interns its own: building
        # a frozen dataclass costs more than the lookups that decide it.
        self._answers: dict[tuple[str, str, str | None], Decision] = {}
        for roles in set(self.members.values()):
            self._grant(roles)  # compiled now, not on a request's first check (as the server warms)

    def _grant(self, roles: tuple[str, ...]) -> tuple[_Matcher, _Matcher]:
        grant = self._grants.get(roles)
        if grant is None:
            active: list[tuple[str, str, str]] = []
            inactive: list[tuple[str, str, str]] = []
            for role in roles:
                into = active if role in self._allowed else inactive
                into.extend((res, act, role) for res, act in self._catalog.get(role, ()))
                into = active if self._custom_roles else inactive
                into.extend((res, act, role) for res, act in self._custom.get(role, ()))
            grant = self._grants[roles] = (_Matcher(active), _Matcher(inactive))
        return grant

    def decide(self, user: str, resource: str, action: str) -> Decision:
        roles = self.members.get(user)
        if roles is None:
            return self._answer(False, "unknown_subject", user, None)
        if not self.access:
            return Decision(
                False,
                "subscription_inactive",
                self.customer,
                self.index_version,
                user,
                self.plan,
                inactive_since=self.inactive_since,
            )
        active, inactive = self._grants.get(roles) or self._grant(roles)
        role = active.match(resource, action)
        if role is not None:
            if self._gates is not None and self._gates.match(resource, action) is not None:
                return self._answer(False, "feature_not_in_plan", user, role)
            return self._answer(True, "allowed", user, role)
        role = inactive.match(resource, action)
        if role is not None:
            return self._answer(False, "role_not_allowed", user, role)
        return self._answer(False, "no_permission", user, None)

    def _answer(self, allowed: bool, reason: str, user: str, role: str | None) -> Decision:
        key = (user, reason, role)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = Decision(
                allowed, reason, self.customer, self.index_version, user, self.plan, role
            )
        return answer


def unknown_tenant(customer: str, user: str, index_version: int) -> Decision:
    return Decision(False, "unknown_tenant", customer, index_version, user)
