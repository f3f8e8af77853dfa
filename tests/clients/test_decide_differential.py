"""The SDK's local decision (`clients/python/tiergate_client/decide.py`) against the server's decision
index, offline, on generated policies: every tenant's bundle goes through the very encoding the endpoint
serves (`gateway/entitlements/bundle.py`, msgspec JSON), is read back by the client, and must answer
every request as `DecisionIndex.decide` does (allowed, reason, granting role)."""

from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from tiergate_client.decide import TenantRules as ClientRules

from gateway.authz.domain import Membership, PolicySnapshot, TenantStanding
from gateway.entitlements.bundle import decision_bundle
from gateway.entitlements.index import DecisionIndex
from tests.entitlements.test_index_differential import (
    member_requests,
    memberships,
    policies,
    tenant_tables,
)


def client_rules(index: DecisionIndex, tenant_id: str) -> ClientRules | None:
    exported = index.export(tenant_id)
    if exported is None:
        return None
    bundle = decision_bundle(exported, plan_key=exported.plan, inactive_since=None, version=index.version)
    return ClientRules(json.loads(msgspec.json.encode(bundle)))


@settings(max_examples=250, deadline=None)
@given(
    policy=policies(),
    tenants=tenant_tables(),
    members=st.lists(memberships, min_size=2, max_size=14),
    data=st.data(),
)
def test_the_client_decides_every_request_as_the_index_does(
    policy: PolicySnapshot, tenants: list[TenantStanding], members: list[Membership], data: st.DataObject
) -> None:
    index = DecisionIndex.build(policy, tenants=tenants, memberships=members, version=7)
    for user, tenant, resource, action in data.draw(member_requests(members)):
        server = index.decide(user, tenant, resource, action)
        rules = client_rules(index, tenant)
        if rules is None:
            assert server.reason == "unknown_tenant"
            continue
        local = rules.decide(user, resource, action)
        assert (local.allowed, local.reason, local.role) == (server.allowed, server.reason, server.role), (
            user,
            tenant,
            resource,
            action,
        )
        assert local.index_version == 7
