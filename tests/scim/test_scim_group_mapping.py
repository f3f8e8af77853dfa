"""The `scim_group_roles` setting: IdP group names that are not role names, mapped to roles."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from gateway.config import Settings
from tests.conftest import Api
from tests.scim.helpers import Scim, scim_tenant


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, scim_group_roles=("Engineering=editor", "IT=admin"))


async def test_mapped_groups_give_their_role_clamped_to_the_tier(api: Api, demo: Any) -> None:
    customer, token = await scim_tenant(api, "pro_monthly")
    scim = Scim(api, token)
    ann = await scim.create_user("ann@acme.example")
    await scim.create_group("Engineering", [ann["id"]])
    page = await api.get(f"/v1/customers/{customer}/members")
    assert page["data"][0]["role"] == "editor"
    await scim.create_group("IT", [ann["id"]])
    page = await api.get(f"/v1/customers/{customer}/members")
    assert page["data"][0]["role"] == "admin"

    basic, basic_token = await scim_tenant(api, "basic_monthly", name="Small")
    small = Scim(api, basic_token)
    bob = await small.create_user("bob@small.example")
    await small.create_group("IT", [bob["id"]])  # admin is not in Basic: the default role
    page = await api.get(f"/v1/customers/{basic}/members")
    assert page["data"][0]["role"] == "viewer"
