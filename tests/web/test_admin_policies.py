"""The console's policy editor in Chromium (issue #14): the policy as a matrix; a draft that lets Basic's
viewers update projects, its diff and what-if (the viewer's request changes from denied to allowed);
publish → `/v1/check` allows it; restore → denied again. A bad line is named beside the text and nothing
is published; a support member reads the policy but cannot publish (no button, and a 403 for the form).
axe on every page, English and Dutch; screenshots."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.web.cookies import STAFF_COOKIE
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session

pytestmark = pytest.mark.browser

GRANT = "p, role:viewer, *, projects/*, update, allow"


async def _text(page: Any, selector: str) -> str:
    return " ".join((await page.text_content(selector) or "").split())


async def _decision(
    api: Api, customer: str, user: str, *, want: bool, reason: str | None = None
) -> dict[str, Any]:
    """The viewer's update of a project, asked until it reads `want` (the index follows a publish within
    its propagation bound)."""
    body = {"customer": customer, "user": user, "resource": "projects/7", "action": "update"}
    for _ in range(100):
        result: dict[str, Any] = await api.post("/v1/check", body, expect=200)
        if result["allowed"] is want and reason in (None, result["reason"]):
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"/v1/check still answers {result}")


async def test_edit_what_if_publish_and_restore_the_policy(
    web_server: Api, page: Any, db: Any, clock: Any
) -> None:
    api = web_server
    url: str = api.url  # type: ignore[attr-defined]
    customer = await api.post("/v1/customers", {"name": "Basic Co", "currency": "USD"})
    await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly", "trial_days": 0}
    )
    viewer = await api.post(
        f"/v1/customers/{customer['id']}/members", {"email": "vic@basic.example", "role": "viewer"}
    )
    await _decision(api, customer["id"], viewer["user"], want=False, reason="no_permission")
    version = (await api.get("/v1/policies"))["version"]

    token = await staff_session(db, clock, "owner@vendor.example", "owner")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])
    errors = console_errors(page)
    await page.goto(f"{url}/admin/policies?lang=en")
    assert await _text(page, "#policy-version") == f"Version {version} is in force."
    # Basic hands out owner and viewer; Pro adds admin and editor (and includes Basic's).
    assert await _text(page, '[data-plan="basic"] [data-role="viewer"]') == "✓"
    assert await _text(page, '[data-plan="basic"] [data-role="editor"]') == "–"
    assert await _text(page, '[data-plan="pro"] [data-role="viewer"]') == "✓"
    await axe_check(page)
    await screenshot(page, "admin-policies-en")

    # A bad line: named beside the text, nothing published.
    draft = await page.input_value("#f-rules")
    await page.fill("#f-rules", draft + "p, role:viewer, projects\n")
    await page.click("#preview-draft")
    lines = draft.count("\n") + 1
    assert await _text(page, "#e-rules") == (f"line {lines}: expected a 6-field p line or a 3-field g2 line")
    await axe_check(page)
    assert (await api.get("/v1/policies"))["version"] == version

    # The draft and its what-if: the viewer's update changes from denied to allowed.
    await page.fill("#f-rules", draft + GRANT + "\n")
    await page.fill("#f-requests", f"{viewer['user']}, {customer['id']}, projects/7, update\n")
    # Who gains or loses: every member of the customer, asked for what the draft touches.
    await page.fill("#f-customers", customer["id"])
    await page.click("#preview-draft")
    assert [await _text(page, "#diff li")] == [f"+ {GRANT}"]
    assert await _text(page, "#what-if-summary") == (
        "2 of 2 requests change: 2 newly allowed, 0 newly denied."
    )
    asked = await page.locator("#what-if tbody th").all_inner_texts()
    assert [" ".join(a.split()) for a in asked] == [
        f"{viewer['user']} @ {customer['id']}: update projects/7",
        f"{viewer['user']} @ {customer['id']}: update projects/example",
    ]
    assert "changed" in await _text(page, "#what-if tbody tr.changed")
    await axe_check(page)
    await screenshot(page, "admin-policies-what-if-en")
    assert (await api.get("/v1/policies"))["version"] == version  # a what-if writes nothing

    await page.fill("#f-note", "viewers may edit projects")
    await page.click("#publish")
    assert await _text(page, "[role=status]") == "The draft is published."
    assert await _text(page, "#policy-version") == f"Version {version + 1} is in force."
    published = await api.get(f"/v1/policies/versions/{version + 1}")
    assert (published["note"], [r["line"] for r in published["diff"]["added"]]) == (
        "viewers may edit projects",
        [GRANT],
    )
    assert published["author"].startswith("staff:")
    allowed = await _decision(api, customer["id"], viewer["user"], want=True)
    assert allowed["role"] == "viewer"

    await page.click(f"#restore-{version}")
    assert await _text(page, "[role=status]") == "The version is restored."
    assert (await api.get("/v1/policies"))["version"] == version + 2
    await _decision(api, customer["id"], viewer["user"], want=False, reason="no_permission")
    await page.goto(f"{url}/admin/policies?lang=nl")
    assert await _text(page, "#policy-version") == f"Versie {version + 2} is van kracht."
    await axe_check(page)
    await screenshot(page, "admin-policies-nl")
    assert [e for e in errors if "422" not in e] == []  # the bad line's page is the one intended 422


async def test_support_reads_the_policy_but_cannot_publish(
    web_server: Api, page: Any, db: Any, clock: Any
) -> None:
    api = web_server
    url: str = api.url  # type: ignore[attr-defined]
    version = (await api.get("/v1/policies"))["version"]
    token = await staff_session(db, clock, "sam@vendor.example", "support")
    await page.context.add_cookies([{"name": STAFF_COOKIE, "value": token, "url": url}])
    await page.goto(f"{url}/admin/policies?lang=en")
    draft = await page.input_value("#f-rules")
    await page.fill("#f-rules", draft + GRANT + "\n")
    await page.click("#preview-draft")
    assert [await _text(page, "#diff li")] == [f"+ {GRANT}"]  # a what-if is reading
    assert await page.locator("#publish").count() == 0
    assert await page.locator("[id^=restore-]").count() == 0
    await axe_check(page)
    # The form posted anyway (a hand-made request with the page's CSRF token): refused, nothing published.
    csrf = await page.get_attribute("input[name=_csrf_token]", "value")
    refused = await page.request.post(
        f"{url}/admin/policies/publish", form={"_csrf_token": csrf or "", "rules": draft + GRANT}
    )
    assert refused.status == 403
    assert (await api.get("/v1/policies"))["version"] == version
