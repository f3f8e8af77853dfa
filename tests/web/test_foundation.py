"""The shared page foundation (gateway/webui, WEB.md): vendored assets served by hashed name and cached
forever, one layout in English and Dutch that axe finds no serious fault with and whose CSP lets no
inline code run, forms protected by CSRF (pages only: the API takes no cookie), error pages in HTML,
and console pages open to staff by role through the same permission matrix as the API."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Request, get, post
from litestar.response import Template

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web import permissions
from gateway.web.cookies import STAFF_COOKIE
from gateway.webui.pages import CONTENT_SECURITY_POLICY, accepted_languages, page_router, render_page
from tests.conftest import Api
from tests.web.conftest import axe_check, console_errors, screenshot, staff_session

ROOT = Path(__file__).resolve().parents[2]

PAGE = """{% extends "webui/base.html" %}
{% import "webui/macros.html" as ui with context %}
{% block title %}{{ _("Error") }}{% endblock %}
{% block content %}
<h1>Foundation</h1>
<p id="amount">{{ ui.amount(3509, "EUR") }}</p>
<p id="day">{{ ui.day(today) }}</p>
{{ ui.table("Plans", ["Plan", "Price"], [["Basic", money(900, "USD")]]) }}
<form hx-post="/test-pages/greet" hx-target="#answer" method="post" action="/test-pages/greet">
  {{ csrf_field }}
  {{ ui.field("name", "Your name", value=name, error=error, required=False) }}
  <button type="submit">Greet</button>
</form>
<div id="answer" aria-live="polite"></div>
{% endblock %}
"""


@pytest.fixture
async def pages(web_server: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Api:
    """A test-only page router on the served app: a form page and an htmx endpoint, listed in the matrix
    like any page, plus a console page that needs the `billing:write` staff permission."""
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "test_form.html").write_text(PAGE)
    app = web_server.app  # type: ignore[attr-defined]
    app.template_engine.engine.loader.searchpath.append(str(tmp_path / "tpl"))

    @get("/form")
    async def form_page(request: Request[Any, Any, Any]) -> Template:
        today = app.state.clock.now().date()
        return render_page(
            request, "test_form.html", {"name": "", "error": None, "today": today}, package="webui"
        )

    @post("/greet", status_code=200)
    async def greet(request: Request[Any, Any, Any]) -> str:
        name = str((await request.form()).get("name", "")).strip()[:50]
        return f"<p id='greeting'>Hello {name}</p>" if name else "<p id='greeting'>Who are you?</p>"

    @get("/money-desk")
    async def money_desk(request: Request[Any, Any, Any]) -> str:
        return "<p>the money desk</p>"

    app.register(page_router(path="/test-pages", route_handlers=[form_page, greet, money_desk]))
    matrix: dict[tuple[str, str], permissions.Access] = permissions.MATRIX  # type: ignore[assignment]
    monkeypatch.setitem(matrix, ("GET", "/test-pages/form"), permissions.Access(permissions.ANYONE))
    monkeypatch.setitem(matrix, ("POST", "/test-pages/greet"), permissions.Access(permissions.ANYONE))
    staff_only = permissions.Access(permissions.STAFF_PAGE, "billing:write")
    monkeypatch.setitem(matrix, ("GET", "/test-pages/money-desk"), staff_only)
    return web_server


def test_the_vendored_assets_match_their_recorded_checksums() -> None:
    done = subprocess.run([sys.executable, "scripts/vendor-assets", "--check"], cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


def test_accept_language_picks_the_best_supported_language() -> None:
    assert accepted_languages("nl-NL,nl;q=0.9,en;q=0.5") == ["nl", "en"]
    assert accepted_languages("fr-FR, en;q=0.2, nl;q=0.8") == ["nl", "en"]
    assert accepted_languages("de, fr;q=0.5") == []
    assert accepted_languages("nl;q=0, en") == ["en"]
    assert accepted_languages("en;q=abc, nl") == ["nl"]


async def test_static_files_are_served_by_hashed_name_and_cached_forever(web_server: Api) -> None:
    registry = web_server.app.state.assets  # type: ignore[attr-defined]
    url = registry.url("vendor/htmx.min.js")
    assert url.startswith("/static/vendor/htmx.min.") and url.endswith(".js")
    async with httpx.AsyncClient(base_url=web_server.url) as client:  # type: ignore[attr-defined]
        served = await client.get(url)
        assert served.status_code == 200
        assert served.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert served.headers["content-type"] == "text/javascript; charset=utf-8"
        on_disk = (ROOT / "gateway/webui/static/vendor/htmx.min.js").read_bytes()
        assert hashlib.sha256(served.content).digest() == hashlib.sha256(on_disk).digest()
        assert (await client.get("/static/vendor/htmx.min.js")).status_code == 404  # unhashed: no
        assert (await client.get("/static/../../pyproject.toml")).status_code == 404


async def test_a_post_without_its_csrf_token_is_refused_on_a_page_but_the_api_takes_no_cookie(
    pages: Api,
) -> None:
    async with httpx.AsyncClient(base_url=pages.url) as client:  # type: ignore[attr-defined]
        shown = await client.get("/test-pages/form", headers={"Accept": "text/html"})
        assert shown.status_code == 200
        assert shown.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert shown.headers["cache-control"] == "no-store"
        token = shown.cookies["tg_csrf"]
        refused = await client.post("/test-pages/greet", data={"name": "Mallory"})
        assert refused.status_code == 403
        assert "text/html" in refused.headers["content-type"]
        assert "Hello" not in refused.text and 'data-status="403"' in refused.text
        form_token = shown.text.split('name="_csrf_token" value="')[1].split('"')[0]
        accepted = await client.post("/test-pages/greet", data={"name": "Ada", "_csrf_token": form_token})
        assert accepted.status_code == 200 and "Hello Ada" in accepted.text
        assert token  # the double-submit cookie the form token is checked against
    # The API is untouched by CSRF: an API key in a header is not something a foreign page can send.
    created = await pages.post("/v1/customers", {"name": "No CSRF needed", "email": "api@example.com"})
    assert created["name"] == "No CSRF needed"


async def test_a_console_page_is_open_to_staff_whose_role_allows_it_and_the_cookie_never_opens_the_api(
    pages: Api, db: Database, clock: FrozenClock
) -> None:
    support = await staff_session(db, clock, "sam@vendor.example", "support")
    finance = await staff_session(db, clock, "fay@vendor.example", "finance")
    async with httpx.AsyncClient(base_url=pages.url) as client:  # type: ignore[attr-defined]
        anonymous = await client.get("/test-pages/money-desk")
        assert anonymous.status_code == 401 and 'data-status="401"' in anonymous.text
        client.cookies.set(STAFF_COOKIE, support)
        refused = await client.get("/test-pages/money-desk")
        assert refused.status_code == 403 and 'data-code="staff_role_forbidden"' in refused.text
        client.cookies.set(STAFF_COOKIE, finance)
        allowed = await client.get("/test-pages/money-desk")
        assert allowed.status_code == 200 and "the money desk" in allowed.text
        # The same cookie on the API is no credential at all (no cross-site form can use it there).
        api = await client.get("/v1/customers")
        assert api.status_code == 401


@pytest.mark.parametrize(
    ("language", "amount", "skip_link", "day"),
    [
        ("en", "€35.09", "Skip to content", "January 1, 2026"),
        ("nl", "€ 35,09", "Naar de inhoud", "1 januari 2026"),
    ],
)
async def test_the_layout_speaks_the_language_is_accessible_and_runs_no_inline_code(
    pages: Api, page: Any, language: str, amount: str, skip_link: str, day: str
) -> None:
    errors = console_errors(page)
    await page.goto(f"{pages.url}/test-pages/form?lang={language}")  # type: ignore[attr-defined]
    assert await page.get_attribute("html", "lang") == language
    assert (await page.locator("#amount").inner_text()).replace("\xa0", " ") == amount
    assert await page.locator("#day").inner_text() == day
    assert await page.get_by_role("link", name=skip_link).count() == 1
    await axe_check(page)
    await screenshot(page, f"webui-foundation-{language}")
    # htmx is loaded from /static and works under the CSP: the form posts with the CSRF header or field.
    await page.get_by_label("Your name").fill("Ada")
    await page.get_by_role("button", name="Greet").click()
    await page.locator("#greeting").wait_for()
    assert await page.locator("#greeting").inner_text() == "Hello Ada"
    assert errors == [], f"console errors (a CSP refusal shows here): {errors}"
