"""Issue 9 #6, the API side: a tenant's connection must claim its e-mail domains, and a domain claimed by one
tenant moves to another only when the platform verifies the new owner."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from sqlalchemy import text

from gateway.db.session import Database
from tests.conftest import Api
from tests.sso.test_connections_api import body, customer_on, tenant_key


async def test_a_tenant_connection_must_claim_domains(api: Api, app: Litestar, demo: Any) -> None:
    customer = await customer_on(api, "enterprise_monthly")
    problem = await api.post("/v1/sso/connections", body(customer=customer, allowed_domains=[]), expect=422)
    assert (problem["code"], problem["field"]) == ("sso_domains_required", "allowed_domains")
    own = await tenant_key(api, customer, ["sso:write", "sso:read"])
    assert (await own.post("/v1/sso/connections", body(allowed_domains=[]), expect=422))["code"] == (
        "sso_domains_required"
    )
    created = await api.post("/v1/sso/connections", body(customer=customer, allowed_domains=["acme.example"]))
    cleared = await api.patch(f"/v1/sso/connections/{created['id']}", {"allowed_domains": []}, expect=422)
    assert cleared["code"] == "sso_domains_required"
    assert (await api.get(f"/v1/sso/connections/{created['id']}"))["allowed_domains"] == ["acme.example"]
    # The platform's own IdP may serve every domain (it signs people into tenants they already belong to).
    await api.post("/v1/sso/connections", body(name="Vendor IdP", allowed_domains=[]))


async def test_a_claimed_domain_moves_only_by_platform_verification(
    api: Api, app: Litestar, demo: Any, db: Database
) -> None:
    first = await customer_on(api, "enterprise_monthly")
    second = await customer_on(api, "enterprise_monthly")
    theirs = await api.post(
        "/v1/sso/connections", body(customer=first, allowed_domains=["acme.example", "acme-labs.example"])
    )
    taken = await api.post(
        "/v1/sso/connections", body(customer=second, allowed_domains=["acme.example"]), expect=409
    )
    assert (taken["code"], taken["domains"]) == ("sso_domain_taken", ["acme.example"])
    mine = await api.post("/v1/sso/connections", body(customer=second, allowed_domains=["second.example"]))
    key = await tenant_key(api, second, ["sso:write", "sso:read"])
    grab = {"allowed_domains": ["second.example", "acme.example"]}
    assert (await key.patch(f"/v1/sso/connections/{mine['id']}", grab, expect=409))[
        "code"
    ] == "sso_domain_taken"
    # A tenant cannot vouch for itself.
    verify = f"/v1/sso/connections/{mine['id']}/verify_domain"
    refused = await key.post(verify, {"domain": "acme.example"}, expect=403)
    assert refused["code"] == "platform_key_required"

    verified = await api.post(verify, {"domain": "ACME.example"}, expect=200)
    assert verified["allowed_domains"] == ["acme.example", "second.example"]
    assert verified["verified_domains"] == ["acme.example"]
    before = await api.get(f"/v1/sso/connections/{theirs['id']}")
    assert (before["allowed_domains"], before["verified_domains"]) == (["acme-labs.example"], [])
    async with db.engine.connect() as conn:
        claim = (
            await conn.execute(
                text(
                    "SELECT connection_id, tenant_id, verified_at FROM sso_domains"
                    " WHERE domain = 'acme.example'"
                )
            )
        ).one()
    assert (claim[0], claim[1]) == (mine["id"], second) and claim[2] is not None

    # The verified owner keeps it: the previous claimant cannot take it back.
    back = {"allowed_domains": ["acme-labs.example", "acme.example"]}
    assert (await api.patch(f"/v1/sso/connections/{theirs['id']}", back, expect=409))["code"] == (
        "sso_domain_taken"
    )
    # Editing the owner's other domains keeps the verification.
    kept = await api.patch(f"/v1/sso/connections/{mine['id']}", {"allowed_domains": ["acme.example"]})
    assert (kept["allowed_domains"], kept["verified_domains"]) == (["acme.example"], ["acme.example"])
