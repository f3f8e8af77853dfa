"""A customer's language: `preferred_locale` set, changed and cleared through the API, stored in the
form gateway.i18n.normalize_locale gives it; a language Tiergate has no catalogs for is a 422 naming the
field, and changes nothing."""

from __future__ import annotations

import pytest

from tests.conftest import Api


async def test_create_change_and_clear_the_language(api: Api) -> None:
    created = await api.post("/v1/customers", {"name": "Bakkerij Jansen", "preferred_locale": "nl-NL"})
    assert created["preferred_locale"] == "nl_NL"
    path = f"/v1/customers/{created['id']}"
    assert (await api.patch(path, {"preferred_locale": "NL"}))["preferred_locale"] == "nl"
    assert (await api.patch(path, {"name": "Bakkerij Jansen BV"}))["preferred_locale"] == "nl"
    assert (await api.patch(path, {"preferred_locale": "en_GB"}))["preferred_locale"] == "en_GB"
    assert (await api.patch(path, {"preferred_locale": None}))["preferred_locale"] is None
    assert (await api.get(path))["preferred_locale"] is None


async def test_a_new_customer_has_no_language_until_it_chooses_one(api: Api) -> None:
    created = await api.post("/v1/customers", {"name": "Tiny"})
    assert created["preferred_locale"] is None


@pytest.mark.parametrize("value", ["xx", "de", "nl-XX", "zh-Hant", "1234"])
async def test_an_unsupported_language_is_a_422_naming_the_field_and_changes_nothing(
    api: Api, value: str
) -> None:
    created = await api.post("/v1/customers", {"name": "Bakkerij Jansen", "preferred_locale": "nl"})
    path = f"/v1/customers/{created['id']}"
    response = await api.client.patch(path, json={"preferred_locale": value}, headers=api._headers(None))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == "preferred_locale"
    assert (await api.get(path))["preferred_locale"] == "nl"
    refused = await api.client.post(
        "/v1/customers", json={"name": "Other", "preferred_locale": value}, headers=api._headers(None)
    )
    assert refused.status_code == 422
    assert [c["id"] for c in (await api.get("/v1/customers"))["data"]] == [created["id"]]
