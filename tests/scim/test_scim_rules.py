"""Pure rules (role from groups, clamped to the tier) and the token service's provisioning hooks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.scim import ScimTokenService
from gateway.scim.domain import ROLE_PRECEDENCE, effective_role, parse_group_roles, rank, role_for_group

ROLES = st.sampled_from([*ROLE_PRECEDENCE, "auditor", "billing_clerk"])


def test_group_names_that_name_roles() -> None:
    known = {"owner", "admin", "editor", "viewer", "auditor"}
    cases = {
        "Admins": "admin",
        "admin": "admin",
        "Tiergate Editors": "editor",
        "tiergate-viewer": "viewer",
        "Auditors": "auditor",
        "Marketing": None,
        "Super Admins": None,
        "": None,
    }
    assert {name: role_for_group(name, known) for name in cases} == cases


@given(st.lists(ROLES, max_size=6), st.frozensets(ROLES), ROLES)
def test_effective_role_is_the_best_allowed_group_role_or_the_default(
    group_roles: list[str], allowed: frozenset[str], default: str
) -> None:
    role = effective_role(group_roles, allowed, default)
    usable = [r for r in group_roles if r in allowed]
    if usable:
        assert role in usable
        assert all(rank(role) <= rank(r) for r in usable)
    else:
        assert role == default


async def test_deprovisioning_disables_tokens_and_reactivation_restores_only_those(
    db: Database, clock: FrozenClock
) -> None:
    from gateway.customers import CustomerService
    from gateway.customers.repository import CustomerRepository

    async with db.unit_of_work() as session:
        tenant = await CustomerService(CustomerRepository(session), clock).create(name="T")
        tokens = ScimTokenService(session, clock)
        kept, kept_secret = await tokens.create(tenant.id)
        revoked, revoked_secret = await tokens.create(tenant.id)
        await tokens.disable(tenant.id, revoked.id)
        assert await tokens.disable_all_for_tenant(tenant.id) == 1
        for secret in (kept_secret, revoked_secret):
            try:
                await tokens.authenticate(secret)
            except Exception as exc:
                assert getattr(exc, "status", None) == 401
            else:
                raise AssertionError("a disabled token authenticated")
        assert await tokens.restore_for_tenant(tenant.id) == 1
        assert (await tokens.authenticate(kept_secret)).tenant_id == tenant.id
        assert kept.disabled_at is None
        assert revoked.disabled_reason == "revoked"


def test_configured_group_names_map_to_roles_before_the_convention() -> None:
    mapping = parse_group_roles(["Engineering=editor", " IT Admins = admin", "Ghosts=phantom"])
    assert mapping == {"engineering": "editor", "it admins": "admin", "ghosts": "phantom"}
    known = {"owner", "admin", "editor", "viewer"}
    assert role_for_group("ENGINEERING", known, mapping) == "editor"
    assert role_for_group("IT Admins", known, mapping) == "admin"
    assert role_for_group("Ghosts", known, mapping) is None  # a role the policy does not know
    assert role_for_group("Viewers", known, mapping) == "viewer"  # the convention still applies
    for bad in ("no-equals-sign", "=admin", "Group=Not A Role"):
        with pytest.raises(ValueError, match="scim_group_roles"):
            parse_group_roles([bad])
