"""Fixtures for the pages (WEB.md: Testing): a real Tiergate served on a free port, Debian's Chromium
driven by Playwright, an axe-core check and a screenshot per page.

Pages run on the embedded SQLite database only: they call the same services as the API, whose own tests
run on both databases, and a browser per test is the slow part."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from gateway.db.session import Database
from tests.conftest import Api, empty_sqlite_file
from tests.served import replica  # noqa: F401  (a fixture)
from tests.sso.peers import need

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--proxy-server=http://127.0.0.1:9"]
ARTIFACTS = Path(os.environ.get("TIERGATE_ARTIFACTS_DIR", "test-artifacts")) / "screenshots"
# axe-core impacts that fail a page (WEB.md: no serious or critical violation).
FAILING_IMPACTS = {"serious", "critical"}


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only for pages (see the module's docstring); overrides the two-backend fixture."""

    database = Database(f"sqlite+aiosqlite:///{empty_sqlite_file(tmp_path / 'pages.sqlite3')}")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def web_server(replica: Callable[..., AbstractAsyncContextManager[Api]]) -> AsyncIterator[Api]:  # noqa: F811
    """A served Tiergate (the demo catalog seeded) and an API client speaking to it as the platform key;
    `web_server.url` is its address, `web_server.app` the Litestar app (to add a test-only route)."""
    async with replica() as api:
        api.url = str(api.client.base_url).rstrip("/")  # type: ignore[attr-defined]
        yield api


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    need("chromium", os.access(CHROMIUM, os.X_OK), "apt-get install chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    """A fresh browser context and page that may reach loopback only (the pages work offline)."""
    context = await browser.new_context(locale="en-US")
    page = await context.new_page()

    async def loopback_only(route: Any) -> None:
        if urlsplit(route.request.url).hostname in {"127.0.0.1", "localhost"}:
            await route.continue_()
        else:
            await route.abort()

    await page.route("**/*", loopback_only)
    try:
        yield page
    finally:
        await context.close()


async def axe_violations(page: Any) -> list[str]:
    """The serious and critical accessibility violations axe-core finds on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v.get("impact") in FAILING_IMPACTS
    ]


async def axe_check(page: Any) -> None:
    violations = await axe_violations(page)
    assert violations == [], f"{page.url}: accessibility violations: {violations}"


async def screenshot(page: Any, name: str) -> Path:
    """A full-page screenshot in the artefacts folder (TIERGATE_ARTIFACTS_DIR, else ./test-artifacts)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


def console_errors(page: Any) -> list[str]:
    """Start collecting the page's console errors and CSP refusals; returns the (live) list."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


async def staff_session(db: Database, clock: Any, email: str, role: str) -> str:
    """A signed-in staff member's session token (the value of the `tg_staff` cookie)."""
    from datetime import timedelta

    from gateway.admin.staff import StaffService

    async with db.unit_of_work(actor="system:test") as session:
        staff = StaffService(session, clock, session_ttl=timedelta(hours=12))
        member = await staff.by_email(email) or await staff.add(email, role)
        link = await staff.issue_login_link(member)
    async with db.unit_of_work(actor="system:test") as session:
        signed_in = await StaffService(session, clock, session_ttl=timedelta(hours=12)).redeem(link)
        return signed_in.token
