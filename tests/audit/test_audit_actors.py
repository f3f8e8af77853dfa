"""Every audit entry names its actor and its tenant (issue 18): the API key, the SCIM token, the end user,
or the job; and credentials and configuration changes are audited by default. Told through the API."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle
from tests.scim.helpers import USER, Scim, synced


@pytest.fixture
def settings() -> Settings:
    return manual_settings(deprovisioned_retention_days=30)


async def admin_key_id(api: Api) -> str:
    keys = (await api.get("/v1/api_keys", params={"limit": 100}))["data"]
    return str(next(k["id"] for k in keys if k["name"] == "bootstrap"))


async def entries(api: Api, **params: Any) -> list[tuple[str, str, str | None]]:
    log = (await api.get("/v1/audit_log", params={"limit": 100, **params}))["data"]
    return [(e["action"], e["actor"], e["customer"]) for e in log]


async def tenant(api: Api, price: str = "pro_monthly") -> str:
    customer = (await api.post("/v1/customers", {"name": "Acme", "currency": "USD"}))["id"]
    await api.post("/v1/subscriptions", {"customer": customer, "price": price, "trial_days": 0})
    return str(customer)


async def test_member_changes_and_erasure_name_the_api_key_and_the_tenant(
    api: Api, app: Litestar, demo: Any
) -> None:
    admin = f"key:{await admin_key_id(api)}"
    customer = await tenant(api)
    made = await api.post(
        "/v1/api_keys", {"name": "app", "scopes": ["customers:write"], "customer": customer}
    )
    app_key = api.as_key(made["secret"])
    member = await app_key.post(f"/v1/customers/{customer}/members", {"email": "pat@acme.example"})
    await app_key.patch(f"/v1/customers/{customer}/members/{member['id']}", {"role": "editor"})
    await api.post(f"/v1/users/{member['user']}/erase", {}, expect=200)
    await settle(api, app)

    by_app = f"key:{made['id']}"
    assert await entries(api, customer=customer) == [
        ("api_key.created", admin, customer),
        ("member.added", by_app, customer),
        ("member.role_changed", by_app, customer),
        ("member.removed", admin, customer),
        ("user.erased", admin, customer),  # user.tokens_revoked is about the user, not a tenant
        # Derived by the relay (it runs at `settle`) from the subscription the admin's key created.
        ("customer.provisioned", admin, customer),
    ]


async def test_scim_token_and_job_actors(api: Api, app: Litestar, demo: Any) -> None:
    admin = f"key:{await admin_key_id(api)}"
    test_clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"}))["id"]
    customer = (
        await api.post("/v1/customers", {"name": "Gone", "currency": "USD", "test_clock": test_clock})
    )["id"]
    sub = await api.post("/v1/subscriptions", {"customer": customer, "price": "pro_monthly", "trial_days": 0})
    token = await api.post(f"/v1/customers/{customer}/scim_tokens", {"name": "okta"})
    await synced(api)
    await Scim(api, token["secret"]).call(
        "POST", "/Users", {"schemas": [USER], "userName": "ann@gone.example"}, expect=201
    )
    await api.post(f"/v1/subscriptions/{sub['id']}/cancel", {"at_period_end": False}, expect=201)
    await settle(api, app)
    await api.post(f"/v1/test_clocks/{test_clock}/advance", {"frozen_time": "2026-04-01T00:00:00Z"})
    await settle(api, app)  # the retention purge runs in the relay's tick

    assert await entries(api, customer=customer) == [
        ("scim_token.created", admin, customer),
        ("member.added", f"scim:{token['id']}", customer),
        # Derived by the relay from what the admin's key did: subscribed, then canceled.
        ("customer.provisioned", admin, customer),
        ("access.revoked", admin, customer),
        # The retention purge job, a month later on the customer's clock.
        ("member.removed", "system:retention_purge", customer),
        ("user.erased", "system:retention_purge", customer),
        ("customer.data_purged", "system:retention_purge", customer),
    ]


async def test_credentials_and_configuration_are_audited_by_default(
    api: Api, app: Litestar, demo: Any
) -> None:
    admin = f"key:{await admin_key_id(api)}"
    customer = await tenant(api, "enterprise_monthly")
    await synced(api)
    key = await api.post("/v1/api_keys", {"name": "ci", "scopes": ["customers:read"], "customer": customer})
    await api.post(f"/v1/api_keys/{key['id']}/revoke", expect=None)
    scim = await api.post(f"/v1/customers/{customer}/scim_tokens", {"name": "okta"})
    await api.delete(f"/v1/customers/{customer}/scim_tokens/{scim['id']}", expect=200)
    tenant_admin = api.as_key(
        (
            await api.post(
                "/v1/api_keys", {"name": "t", "scopes": ["webhooks:write", "sso:write"], "customer": customer}
            )
        )["secret"]
    )
    tenant_id = (await api.get("/v1/api_keys", params={"limit": 100}))["data"][-1]["id"]
    hook = await tenant_admin.post(
        "/v1/webhook_endpoints", {"url": "https://hooks.acme.example/tg", "enabled_events": ["member.*"]}
    )
    await tenant_admin.delete(f"/v1/webhook_endpoints/{hook['id']}", expect=200)
    connection = await tenant_admin.post(
        "/v1/sso/connections",
        {
            "name": "Acme Okta",
            "issuer": "https://login.acme.example",
            "client_id": "tiergate",
            "client_secret": "very-secret-value",
            "allowed_domains": ["acme.example"],
            "customer": customer,
        },
    )
    await tenant_admin.patch(
        f"/v1/sso/connections/{connection['id']}", {"client_secret": "rotated-secret-value"}
    )
    await tenant_admin.delete(f"/v1/sso/connections/{connection['id']}", expect=200)
    member = await api.post(f"/v1/customers/{customer}/members", {"email": "pat@acme.example"})
    await api.get(f"/v1/users/{member['user']}/export")
    await settle(api, app)

    log = (await api.get("/v1/audit_log", params={"customer": customer, "limit": 100}))["data"]
    by = f"key:{tenant_id}"
    assert [(e["action"], e["actor"]) for e in log if e["action"] != "customer.provisioned"] == [
        ("api_key.created", admin),
        ("api_key.revoked", admin),
        ("scim_token.created", admin),
        ("scim_token.revoked", admin),
        ("api_key.created", admin),
        ("webhook_endpoint.created", by),
        ("webhook_endpoint.deleted", by),
        ("sso_connection.created", by),
        ("sso_connection.updated", by),
        ("sso_connection.deleted", by),
        ("member.added", admin),
        ("user.exported", admin),
    ]
    assert all(e["customer"] == customer for e in log)
    updated = next(e for e in log if e["action"] == "sso_connection.updated")
    assert updated["data"] == {"changed": ["client_secret"]}  # names the field, never the secret
    assert "secret" not in str([e["data"] for e in log if e["action"] == "api_key.created"])
