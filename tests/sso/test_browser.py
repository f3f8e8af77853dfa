"""The whole sign-in in headless Chromium (Debian's package, driven by Playwright): from the login button,
through the real IdP's login and consent screens, to the signed-in page, and out again.

The browser may reach loopback only: every other request is aborted inside the browser (the IdP's stock
pages would fetch a web font), and a dead local proxy catches anything that slips past.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.sso.conftest import Stack
from tests.sso.peers import need

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--no-first-run",
    "--no-pings",
    "--metrics-recording-only",
    "--proxy-server=http://127.0.0.1:9",
]


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in {"127.0.0.1", "localhost"} or url.startswith(("data:", "about:"))


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    need("chromium", os.access(CHROMIUM, os.X_OK), "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_sign_in_from_the_login_button_to_the_signed_in_page_and_out(
    sso_stack: Stack, chromium: object, domain: str, tmp_path: Path
) -> None:
    from playwright.sync_api import Browser, Route, expect

    assert isinstance(chromium, Browser)
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", default_role="editor")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    email = f"pat@{domain}"

    context = chromium.new_context()
    blocked: list[str] = []

    def guard(route: Route) -> None:
        if _loopback(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    try:
        page.goto(f"{sso_stack.tiergate.url}/sso/login")
        page.fill("#email", email)
        page.click("#sign-in")

        # The IdP's own login screen (its dev interactions: any password), prefilled from login_hint.
        page.wait_for_url(f"{sso_stack.idp.issuer}/interaction/**")
        expect(page.locator("input[name=login]")).to_have_value(email)
        page.fill("input[name=password]", "any password")
        page.click("button[type=submit]")
        # Consent, then back to Tiergate's callback and on to the signed-in page.
        page.wait_for_url(f"{sso_stack.idp.issuer}/interaction/**")
        page.click("button[type=submit]")
        page.wait_for_url(f"{sso_stack.tiergate.url}/sso/me")

        expect(page.locator("h1")).to_have_text("Signed in")
        expect(page.locator("#user")).to_have_text(email)
        expect(page.locator("#tenant")).to_have_text(tenant)
        expect(page.locator("#role")).to_have_text("editor")
        expect(page.locator("#plan")).to_have_text("enterprise")
        page.screenshot(path=str(tmp_path / "signed-in.png"))
        cookies = {c["name"]: c for c in context.cookies()}
        assert cookies["tg_session"]["httpOnly"] is True and cookies["tg_session"]["sameSite"] == "Lax"
        assert [(m["email"], m["role"]) for m in admin.members(tenant)] == [(email, "editor")]

        # Sign out: locally, then RP-initiated logout at the IdP, which sends the browser back.
        page.click("#sign-out")
        page.wait_for_url(f"{sso_stack.idp.issuer}/session/end**")
        page.click("#op-logout")
        page.wait_for_url(f"{sso_stack.tiergate.url}/sso/logged-out**")
        expect(page.locator("#signed-out")).to_have_text("You are signed out.")
        assert "tg_session" not in {c["name"] for c in context.cookies(sso_stack.tiergate.url)}
        response = page.goto(f"{sso_stack.tiergate.url}/sso/me")
        assert response is not None and response.status == 401
        expect(page.locator("h1")).to_have_text("Not signed in")
    finally:
        context.close()
    assert all(not _loopback(u) for u in blocked)
