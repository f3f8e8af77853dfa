"""/v1/sso/connections: per-tenant and platform IdP connections; the plan decides whether a tenant may have
one; the client secret goes in and never comes out; one tenant never sees another's."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from tests.conftest import Api
from tests.entitlements.test_check_api import synced

ISSUER = "https://login.acme-idp.example"


async def customer_on(api: Api, price: str) -> str:
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0})
    await synced(api)
    return str(customer["id"])


def body(**over: Any) -> dict[str, Any]:
    return {
        "name": "Acme Okta",
        "issuer": ISSUER,
        "client_id": "tiergate",
        "client_secret": "very-secret-value",
        "allowed_domains": ["Acme.example", "acme-labs.example"],
        **over,
    }


async def tenant_key(api: Api, customer: str, scopes: list[str]) -> Api:
    key = await api.post("/v1/api_keys", {"name": "tenant", "scopes": scopes, "customer": customer})
    return api.as_key(key["secret"])


async def test_create_read_update_delete(api: Api, app: Litestar, demo: Any) -> None:
    customer = await customer_on(api, "enterprise_monthly")
    created = await api.post("/v1/sso/connections", body(customer=customer, default_role="editor"))
    assert created["object"] == "sso_connection" and created["id"].startswith("ssoc_")
    assert created["customer"] == customer and created["issuer"] == ISSUER
    assert created["allowed_domains"] == ["acme-labs.example", "acme.example"]
    assert created["scopes"] == ["openid", "email", "profile"] and created["enabled"] is True
    assert created["client_secret_set"] is True and "client_secret" not in created
    assert created["redirect_uri"] == "http://127.0.0.1:8000/sso/callback"
    assert created["default_role"] == "editor"

    fetched = await api.get(f"/v1/sso/connections/{created['id']}")
    assert fetched == created
    listed = await api.get("/v1/sso/connections")
    assert [c["id"] for c in listed["data"]] == [created["id"]] and listed["has_more"] is False
    assert "very-secret-value" not in str(listed) and "very-secret-value" not in str(fetched)

    updated = await api.patch(
        f"/v1/sso/connections/{created['id']}",
        {
            "allowed_domains": ["acme.example"],
            "enabled": False,
            "scopes": ["email"],
            "client_secret": "rotated",
        },
    )
    assert updated["allowed_domains"] == ["acme.example"] and updated["enabled"] is False
    assert updated["scopes"] == ["openid", "email"]  # openid is always asked for
    assert "rotated" not in str(updated)

    removed = await api.delete(f"/v1/sso/connections/{created['id']}")
    assert removed["id"] == created["id"]
    await api.get(f"/v1/sso/connections/{created['id']}", expect=404)
    # Its domains are free again.
    await api.post("/v1/sso/connections", body(customer=customer, allowed_domains=["acme-labs.example"]))


async def test_a_plan_without_sso_is_refused_and_nothing_is_created(
    api: Api, app: Litestar, demo: Any
) -> None:
    customer = await customer_on(api, "basic_monthly")
    problem = await api.post("/v1/sso/connections", body(customer=customer), expect=403)
    assert problem["code"] == "sso_not_in_plan" and problem["reason"] == "feature_not_in_plan"
    assert problem["plan"] == "basic" and "not included" in problem["detail"]
    assert (await api.get("/v1/sso/connections"))["data"] == []


async def test_an_sso_connection_right_after_subscribing_is_not_refused_while_the_index_catches_up(
    api: Api, app: Litestar, demo: Any
) -> None:
    """An app creates a customer, subscribes it and at once configures its IdP. The decision index follows
    commits within the propagation bound, so it may not know the tenant yet (`unknown_tenant`). Writes ask
    the database then: the plan's answer, not the index's lag, decides. Held here by keeping the engine
    from syncing at all."""
    async with app.state.engine._lock:  # no index sync while the app subscribes and configures
        big = await api.post("/v1/customers", {"name": "Fresh Enterprise", "currency": "USD"})
        await api.post("/v1/subscriptions", {"customer": big["id"], "price": "enterprise_monthly"})
        small = await api.post("/v1/customers", {"name": "Fresh Basic", "currency": "USD"})
        await api.post("/v1/subscriptions", {"customer": small["id"], "price": "basic_monthly"})
        asked = {"customer": big["id"], "feature": "sso"}
        behind = await api.call("POST", "/v1/check", json=asked)
        assert behind["reason"] == "unknown_tenant", "the index is behind"

        created = await api.post("/v1/sso/connections", body(customer=big["id"]))
        assert (created["customer"], created["enabled"]) == (big["id"], True)
        # The database answers with the same rules: a plan without SSO is still refused, for its reason.
        problem = await api.post(
            "/v1/sso/connections", body(customer=small["id"], allowed_domains=["small.example"]), expect=403
        )
        assert (problem["code"], problem["reason"], problem["plan"]) == (
            "sso_not_in_plan",
            "feature_not_in_plan",
            "basic",
        )
    assert [c["customer"] for c in (await api.get("/v1/sso/connections"))["data"]] == [big["id"]]


async def test_a_domain_routes_to_one_connection_only(api: Api, app: Litestar, demo: Any) -> None:
    first = await customer_on(api, "enterprise_monthly")
    second = await customer_on(api, "enterprise_monthly")
    await api.post("/v1/sso/connections", body(customer=first, allowed_domains=["acme.example"]))
    problem = await api.post(
        "/v1/sso/connections",
        body(customer=second, allowed_domains=["other.example", "ACME.example"]),
        expect=409,
    )
    assert problem["code"] == "sso_domain_taken" and problem["domains"] == ["acme.example"]
    assert first not in problem["detail"]  # says it is taken, not by whom
    assert len((await api.get("/v1/sso/connections"))["data"]) == 1


async def test_platform_connections_and_tenant_scoping(api: Api, app: Litestar, demo: Any) -> None:
    mine = await customer_on(api, "enterprise_monthly")
    theirs = await customer_on(api, "enterprise_monthly")
    platform = await api.post(
        "/v1/sso/connections", body(name="Vendor IdP", allowed_domains=["vendor.example"])
    )
    assert platform["customer"] is None
    their_conn = await api.post(
        "/v1/sso/connections", body(customer=theirs, allowed_domains=["theirs.example"])
    )

    key = await tenant_key(api, mine, ["sso:write"])
    # A tenant key configures its own organisation's connection, whatever it names...
    own = await key.post("/v1/sso/connections", body(allowed_domains=["mine.example"]))
    assert own["customer"] == mine
    await key.post("/v1/sso/connections", body(customer=theirs, allowed_domains=["x.example"]), expect=404)
    # ...and sees neither the platform's connections nor another tenant's (404, never 403).
    assert [c["id"] for c in (await key.get("/v1/sso/connections"))["data"]] == [own["id"]]
    for other in (platform["id"], their_conn["id"]):
        await key.get(f"/v1/sso/connections/{other}", expect=404)
        await key.patch(f"/v1/sso/connections/{other}", {"enabled": False}, expect=404)
        await key.delete(f"/v1/sso/connections/{other}", expect=404)
    assert (await api.get(f"/v1/sso/connections/{their_conn['id']}"))["enabled"] is True

    reader = await tenant_key(api, mine, ["sso:read"])
    problem = await reader.post("/v1/sso/connections", body(allowed_domains=["y.example"]), expect=403)
    assert problem["code"] == "missing_scope"
    await reader.get(f"/v1/sso/connections/{own['id']}")


async def test_bad_input_is_a_422_and_changes_nothing(api: Api, app: Litestar, demo: Any) -> None:
    customer = await customer_on(api, "enterprise_monthly")
    cases: list[tuple[dict[str, Any], str]] = [
        (body(customer=customer, issuer="http://login.acme.example"), "issuer"),
        (body(customer=customer, token_endpoint="https://u:p@acme.example/token"), "token_endpoint"),
        (body(customer=customer, allowed_domains=["not a domain"]), "allowed_domains"),
        (body(customer=customer, issuer="ftp://acme.example"), ""),
        (body(customer=customer, unexpected=True), ""),
        (body(customer=customer, default_role="Not A Role"), ""),
        ({k: v for k, v in body(customer=customer).items() if k != "client_secret"}, ""),
    ]
    for payload, field in cases:
        problem = await api.post("/v1/sso/connections", payload, expect=422)
        assert problem["code"] == "validation_failed", problem
        if field:
            assert problem["field"] == field
    await api.post("/v1/sso/connections", body(customer="cus_missing"), expect=404)
    assert (await api.get("/v1/sso/connections"))["data"] == []
    created = await api.post("/v1/sso/connections", body(customer=customer))
    await api.patch(f"/v1/sso/connections/{created['id']}", {"issuer": "http://evil.example"}, expect=422)
    await api.patch(f"/v1/sso/connections/{created['id']}", {"customer": "cus_other"}, expect=422)
    assert (await api.get(f"/v1/sso/connections/{created['id']}"))["issuer"] == ISSUER
