"""Tier and product names in the customer's language: `name_translations` set through the API (keys
normalised, bad locales refused with a 422 naming the field), and `display_name` choosing exact locale,
then language, then the plain name."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gateway.catalog import display_name
from tests.conftest import Api


async def test_a_plan_carries_its_dutch_name(api: Api, demo: Any) -> None:
    updated = await api.patch(
        "/v1/plans/pro", {"name_translations": {"nl-NL": " Professioneel ", "en": "Pro"}}
    )
    assert updated["name_translations"] == {"nl_NL": "Professioneel", "en": "Pro"}
    assert (await api.get("/v1/plans/pro"))["name_translations"] == {"nl_NL": "Professioneel", "en": "Pro"}
    cleared = await api.patch("/v1/plans/pro", {"name_translations": None})
    assert cleared["name_translations"] is None


async def test_a_product_carries_translations_too(api: Api) -> None:
    product = await api.post("/v1/products", {"name": "Cloud storage"})
    updated = await api.patch(f"/v1/products/{product['id']}", {"name_translations": {"nl": "Cloudopslag"}})
    assert updated["name_translations"] == {"nl": "Cloudopslag"}


async def test_an_unknown_locale_key_is_a_422_and_changes_nothing(api: Api, demo: Any) -> None:
    await api.patch("/v1/plans/pro", {"name_translations": {"nl": "Professioneel"}})
    problem = await api.patch("/v1/plans/pro", {"name_translations": {"xx": "Pro"}}, expect=422)
    assert problem["field"] == "name_translations"
    assert (await api.get("/v1/plans/pro"))["name_translations"] == {"nl": "Professioneel"}


def test_display_name_prefers_the_exact_locale_then_its_language_then_the_name() -> None:
    plan = SimpleNamespace(name="Business", name_translations={"nl": "Zakelijk", "nl_BE": "Zaak"})
    assert display_name(plan, "nl_BE") == "Zaak"
    assert display_name(plan, "nl-NL") == "Zakelijk"
    assert display_name(plan, "en") == "Business"
    assert display_name(plan, None) == "Business"
    assert display_name(plan, "xx") == "Business"
    assert display_name(SimpleNamespace(name="Business", name_translations=None), "nl") == "Business"
