"""How every page is rendered and routed (WEB.md): one Jinja2 environment for all page packages, a
render call that hands a template the locale's helpers, and a router that adds CSRF protection, a strict
Content-Security-Policy and error pages.

A page package (gateway/portal, gateway/admin) keeps its templates in `<package>/templates/<package>/`
and extends `webui/base.html`; its handlers return `render_page(request, "<package>/x.html", {...},
package="<package>")` and are grouped in `page_router(path=..., route_handlers=[...])`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from litestar import Request, Response, Router
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler
from litestar.utils.scope.state import ScopeState
from markupsafe import Markup, escape

from gateway import i18n
from gateway.kernel.errors import DomainError
from gateway.web.cookies import LANG_COOKIE

WEBUI_TEMPLATES = Path(__file__).parent / "templates"
CSRF_COOKIE = "tg_csrf"
CSRF_HEADER = "x-csrftoken"
CSRF_FIELD = "_csrf_token"  # the form field Litestar's CSRF middleware reads

# No inline script, no eval, nothing from another origin: htmx and our scripts are files under /static.
# uPlot and htmx set element styles through the CSSOM, which `style-src 'self'` allows; htmx's own
# indicator <style> is turned off in base.html (htmx-config), so no inline <style> is needed either.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def template_config(
    folders: Iterable[Path], functions: Mapping[str, Callable[..., Any]] | None = None
) -> TemplateConfig[JinjaTemplateEngine]:
    """One environment over the page packages' template folders (autoescape on, undefined names fail);
    `functions` are globals the composition root hands the packages' templates (e.g. the console's
    `staff_may(principal, scope)`)."""
    environment = Environment(
        loader=FileSystemLoader([str(f) for f in folders if f.is_dir()]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals.update(functions or {})
    return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


# ---- language --------------------------------------------------------------------------------------


def accepted_languages(header: str) -> list[str]:
    """`nl-NL,nl;q=0.9,en;q=0.5` → ['nl', 'en']: supported languages by descending q, first seen first."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        language = tag.strip().split("-")[0].lower()
        if q > 0 and language in i18n.SUPPORTED_LANGUAGES:
            weighted.append((-q, position, language))
    seen: list[str] = []
    for _, _, language in sorted(weighted):
        if language not in seen:
            seen.append(language)
    return seen


def negotiate_language(request: Request[Any, Any, Any], preferred: str | None = None) -> str:
    """The page's language: the caller's choice for this person (a customer's `preferred_locale`, a staff
    member's), else `?lang=`, else the `tg_lang` cookie, else Accept-Language, else English."""
    for candidate in (preferred, request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate:
            try:
                return i18n.language_of(i18n.normalize_locale(candidate[:35]))
            except i18n.UnsupportedLocale:
                continue
    accepted = accepted_languages(request.headers.get("accept-language", "")[:500])
    return accepted[0] if accepted else i18n.DEFAULT_LOCALE


# ---- rendering -------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _helpers(package: str, language: str) -> dict[str, Callable[..., Any]]:
    """The package's catalog first, then the shared layout's (webui), with Babel's formats."""
    own = i18n.translations(package, language)
    shared = i18n.translations("webui", language)

    def lookup(message: str) -> str:
        text: str = own.ugettext(message)
        return shared.ugettext(message) if text == message else text

    def _gettext(message: str, **params: Any) -> str:
        text = lookup(message)
        return text % params if params else text

    def _ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
        text: str = own.ungettext(singular, plural, n)
        if text in (singular, plural):
            text = shared.ungettext(singular, plural, n)
        return text % {"num": n, **params}

    def money(amount: int, currency: str) -> str:
        return i18n.format_money(amount, currency, language)

    def day(value: date | datetime | None, format: str = "long") -> str:
        return "" if value is None else i18n.format_date(value, language, format)

    def moment(value: datetime | None, format: str = "medium") -> str:
        return "" if value is None else i18n.format_datetime(value, language, format)

    def percent(value: Decimal | float) -> str:
        return i18n.format_percent(value, language)

    def number(value: int | Decimal) -> str:
        return i18n.format_decimal(value, language)

    return {
        "_": _gettext,
        "gettext": _gettext,
        "ngettext": _ngettext,
        "money": money,
        "date": day,
        "datetime": moment,
        "percent": percent,
        "number": number,
    }


def csrf_token_of(request: Request[Any, Any, Any]) -> str:
    """The token the CSRF middleware of a page router put on this request (empty outside one)."""
    return str(ScopeState.from_scope(request.scope).csrf_token or "")


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    href: str
    current: bool = False


def render_page(
    request: Request[Any, Any, Any],
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    package: str,
    locale: str | None = None,
    status_code: int = 200,
    nav: Sequence[NavItem] = (),
    headers: Mapping[str, str] | None = None,
) -> Template:
    """A page: `template` rendered with `context`, the language's helpers (`_`, `ngettext`, `money`,
    `date`, `datetime`, `percent`, `number`), `asset(name)`, the CSRF token (`csrf_field` for forms --
    Litestar reserves `csrf_input` -- and `csrf_token`), `lang`, and the navigation. `locale` is the
    person's own choice when known."""
    language = negotiate_language(request, locale)
    token = csrf_token_of(request)
    assets = request.app.state.assets
    full: dict[str, Any] = {
        **_helpers(package, language),
        "lang": language,
        "languages": i18n.SUPPORTED_LANGUAGES,
        "asset": assets.url,
        "csrf_token": token,
        "csrf_field": Markup(f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(token)}">'),
        "csrf_header": CSRF_HEADER,
        "nav": list(nav),
        "path": request.url.path,
        "htmx": bool(request.headers.get("hx-request")),
        **(context or {}),
    }
    response_headers = dict(PAGE_HEADERS)
    response_headers.update(headers or {})
    response_headers["Content-Language"] = language
    response_headers["Vary"] = "Accept-Language, Cookie, HX-Request"
    cookies = []
    picked = request.query_params.get("lang")
    if picked and picked[:35] == language and request.cookies.get(LANG_COOKIE) != language:
        # A language picked with `?lang=` stays for the next pages and the forms posted from this one.
        cookies.append(Cookie(key=LANG_COOKIE, value=language, path="/", samesite="lax", max_age=31_536_000))
    return Template(
        template_name=template,
        context=full,
        status_code=status_code,
        headers=response_headers,
        cookies=cookies,
    )


# ---- routing ---------------------------------------------------------------------------------------


def _error_page(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A refusal or bad input on a page is a page (in the visitor's language), never JSON or a 500 trace."""
    if isinstance(exc, DomainError):
        status, detail, code = exc.status, exc.detail, exc.error_code
    elif isinstance(exc, HTTPException):
        status, detail, code = exc.status_code, str(exc.detail), "http_error"
    else:  # pragma: no cover - the app's own handler logs and answers unexpected errors
        raise exc
    return render_page(
        request,
        "webui/error.html",
        {"status": status, "detail": detail, "code": code},
        package="webui",
        status_code=status,
    )


def page_router(*, path: str, route_handlers: Sequence[ControllerRouterHandler]) -> Router:
    """Page routes: CSRF checked on every unsafe method (forms send `_csrf_token`, htmx the header set in
    base.html), error pages in HTML, not in the OpenAPI document. The CSRF secret is derived from the
    app's secret key (`state.csrf_secret`), so every replica accepts every other's tokens."""
    return Router(
        path=path,
        route_handlers=list(route_handlers),
        middleware=[DefineMiddleware(_LazyCSRF)],
        exception_handlers={DomainError: _error_page, HTTPException: _error_page},
        include_in_schema=False,
    )


class _LazyCSRF:
    """Litestar's CSRF middleware with the secret read from the app's state at the first request (routers
    are built at import time; the composition root puts `SecretBox.derive("csrf")` on the state)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inner: CSRFMiddleware | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.inner is None:
            config = CSRFConfig(
                secret=scope["litestar_app"].state.csrf_secret,
                cookie_name=CSRF_COOKIE,
                header_name=CSRF_HEADER,
                cookie_samesite="strict",
                cookie_httponly=True,
                cookie_secure=scope.get("scheme") == "https",
            )
            self.inner = CSRFMiddleware(self.app, config)
        await self.inner(scope, receive, send)
