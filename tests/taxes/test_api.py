"""/v1/tax_rates through the HTTP API: create, list (filters, cursor pages), retrieve, patch, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api


async def test_create_and_retrieve(api: Api) -> None:
    created = await api.post(
        "/v1/tax_rates",
        {
            "display_name": "Sales tax",
            "country": "us",
            "region": "US-CA",
            "percent": "7.250",
            "tax_type": "sales_tax",
        },
    )
    assert created["id"].startswith("txr_")
    assert {k: v for k, v in created.items() if k not in {"id", "created_at"}} == {
        "object": "tax_rate",
        "display_name": "Sales tax",
        "country": "US",
        "region": "CA",
        "jurisdiction": "US-CA",
        "percent": "7.25",
        "inclusive": False,
        "tax_type": "sales_tax",
        "active": True,
    }
    assert created["created_at"] == "2026-01-01T00:00:00Z"
    assert await api.get(f"/v1/tax_rates/{created['id']}") == created


async def test_list_filters_and_pages(api: Api) -> None:
    ids = []
    for country, percent in [("DE", "19"), ("FR", "20"), ("DE", "7"), ("IE", "23"), ("DE", "16")]:
        ids.append(
            (
                await api.post(
                    "/v1/tax_rates", {"display_name": "VAT", "country": country, "percent": percent}
                )
            )["id"]
        )
    await api.patch(f"/v1/tax_rates/{ids[4]}", {"active": False})

    german = await api.get("/v1/tax_rates", params={"country": "de"})
    assert [r["percent"] for r in german["data"]] == ["19", "7", "16"]
    active_german = await api.get("/v1/tax_rates", params={"country": "DE", "active": "true"})
    assert [r["id"] for r in active_german["data"]] == [ids[0], ids[2]]
    inactive = await api.get("/v1/tax_rates", params={"active": "false"})
    assert [r["id"] for r in inactive["data"]] == [ids[4]]

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = await api.get("/v1/tax_rates", params=params)
        seen += [r["id"] for r in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        params = {"limit": 2, "starting_after": page["next_cursor"]}
    assert seen == ids


async def test_patch_renames_and_deactivates_but_the_percent_is_immutable(api: Api) -> None:
    rate = await api.post("/v1/tax_rates", {"display_name": "VAT", "country": "NL", "percent": "21"})
    path = f"/v1/tax_rates/{rate['id']}"
    updated = await api.patch(path, {"display_name": "BTW", "active": False})
    assert (updated["display_name"], updated["active"], updated["percent"]) == ("BTW", False, "21")
    for body in ({"percent": "9"}, {"inclusive": True}, {"country": "BE"}):
        problem = await api.patch(path, body, expect=422)
        assert problem["status"] == 422
    assert await api.get(path) == updated


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "VAT", "country": "DE", "percent": "100"},
        {"display_name": "VAT", "country": "DE", "percent": "-5"},
        {"display_name": "VAT", "country": "DE", "percent": "19.12345"},
        {"display_name": "VAT", "country": "DE", "percent": 19.5},
        {"display_name": "VAT", "country": "DEU", "percent": "19"},
        {"display_name": "VAT", "country": "DE", "percent": "19", "tax_type": "tithe"},
        {"display_name": "VAT", "country": "DE", "percent": "19", "region": "Bavaria!"},
        {"display_name": " ", "country": "DE", "percent": "19"},
        {"display_name": "VAT", "country": "DE"},
        {"display_name": "VAT", "country": "DE", "percent": "19", "extra": 1},
    ],
)
async def test_bad_rates_are_422_and_create_nothing(api: Api, body: dict[str, Any]) -> None:
    response = await api.client.post("/v1/tax_rates", json=body, headers=api._headers(None))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/v1/tax_rates"))["data"] == []


async def test_missing_rate_is_404(api: Api) -> None:
    problem = await api.get("/v1/tax_rates/txr_nope", expect=404)
    assert problem["code"] == "tax_rate_not_found"
    await api.patch("/v1/tax_rates/txr_nope", {"active": False}, expect=404)


async def test_scopes_and_tenant_keys(api: Api) -> None:
    customer = await api.post("/v1/customers", {"name": "Tenant"})
    reader = await api.post("/v1/api_keys", {"name": "r", "scopes": ["billing:read"]})
    writer_tenant = await api.post(
        "/v1/api_keys", {"name": "t", "scopes": ["billing:read", "billing:write"], "customer": customer["id"]}
    )
    rate = await api.post("/v1/tax_rates", {"display_name": "VAT", "country": "AT", "percent": "20"})
    body = {"display_name": "VAT", "country": "AT", "percent": "10"}

    as_reader = api.as_key(reader["secret"])
    assert (await as_reader.get("/v1/tax_rates"))["data"][0]["id"] == rate["id"]
    assert (await as_reader.post("/v1/tax_rates", body, expect=403))["code"] == "missing_scope"

    # Tax rates are platform data: a tenant-scoped key reads them but cannot change them.
    as_tenant = api.as_key(writer_tenant["secret"])
    assert (await as_tenant.get(f"/v1/tax_rates/{rate['id']}"))["id"] == rate["id"]
    assert (await as_tenant.post("/v1/tax_rates", body, expect=403))["code"] == "platform_key_required"
    await as_tenant.patch(f"/v1/tax_rates/{rate['id']}", {"active": False}, expect=403)
    assert (await api.get(f"/v1/tax_rates/{rate['id']}"))["active"] is True
    assert len((await api.get("/v1/tax_rates"))["data"]) == 1
