"""Languages: which locales Tiergate speaks, its message catalogs, and Babel's formatting.

Every customer-facing text (invoices, e-mails, pages) goes through here, so "€ 35,09" in Dutch and
"$35.09" in English come from one place (Babel's CLDR data), never from hand-written number formats.

Catalogs are per package: `gateway/<package>/locales/<lang>.po` (gettext `.po` files, English source
strings as msgids). Keeping one catalog per package lets billing, notifications and the pages change
their own texts without touching each other's files. They are compiled in memory on first use (no
build step, no committed `.mo`). `tests/i18n/test_catalogs.py` fails when a string used in a package is
missing or untranslated in either language.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from babel.messages import mofile, pofile
from babel.support import NullTranslations, Translations

from gateway.kernel.money import exponent, normalize_currency

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "nl")
DEFAULT_LOCALE = "en"
# language, optionally a region: `nl`, `nl-NL`, `nl_BE`, `es-419` (scripts and variants are not used here)
_LOCALE_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_](?:[A-Za-z]{2}|[0-9]{3}))?")
_GATEWAY_DIR = Path(__file__).resolve().parents[1]


class UnsupportedLocale(ValueError):
    """A locale that is malformed, unknown to CLDR, or in a language Tiergate has no catalogs for."""


def normalize_locale(value: str) -> str:
    """The canonical form of a locale tag (`nl`, `nl-NL`, `nl_NL` → `nl` / `nl_NL`), or UnsupportedLocale.

    Region variants are kept (they change date and number details), but the language must be one
    that has complete catalogs.
    """
    text = value.strip()
    if not _LOCALE_TAG.fullmatch(text):
        raise UnsupportedLocale(f"{value!r} is not a locale")
    try:
        locale = Locale.parse(text.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError) as exc:
        raise UnsupportedLocale(f"{value!r} is not a known locale") from exc
    if (
        locale.script
        or locale.variant
        or (locale.territory and locale.territory not in Locale(DEFAULT_LOCALE).territories)
    ):
        raise UnsupportedLocale(f"{value!r} is not a known locale")
    if locale.language not in SUPPORTED_LANGUAGES:
        supported = ", ".join(SUPPORTED_LANGUAGES)
        raise UnsupportedLocale(f"{value!r}: Tiergate speaks {supported}")
    return str(locale)


def language_of(locale: str | None) -> str:
    """The catalog language for a stored locale; anything unknown falls back to English."""
    if not locale:
        return DEFAULT_LOCALE
    try:
        return Locale.parse(normalize_locale(locale)).language
    except UnsupportedLocale:
        return DEFAULT_LOCALE


def _safe_locale(locale: str | None) -> str:
    if not locale:
        return DEFAULT_LOCALE
    try:
        return normalize_locale(locale)
    except UnsupportedLocale:
        return DEFAULT_LOCALE


def catalog_path(package: str, language: str) -> Path:
    return _GATEWAY_DIR / package / "locales" / f"{language}.po"


def catalog_packages() -> list[str]:
    """Every package under gateway/ that holds message catalogs."""
    return sorted(p.parent.name for p in _GATEWAY_DIR.glob("*/locales") if p.is_dir())


@lru_cache(maxsize=64)
def translations(package: str, locale: str | None) -> NullTranslations:
    """The package's catalog in the locale's language, compiled in memory (cached per process)."""
    path = catalog_path(package, language_of(locale))
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as handle:
        catalog = pofile.read_po(handle)
    buffer = io.BytesIO()
    mofile.write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(fp=buffer, domain=package)


def gettext(package: str, locale: str | None, message: str, **params: Any) -> str:
    text = translations(package, locale).ugettext(message)
    return text % params if params else text


def ngettext(package: str, locale: str | None, singular: str, plural: str, n: int, **params: Any) -> str:
    text = translations(package, locale).ungettext(singular, plural, n)
    return text % {"num": n, **params}


# ---- formatting (Babel / CLDR) ------------------------------------------------------------------


def format_money(amount_minor: int, currency: str, locale: str | None) -> str:
    """`format_money(3509, "EUR", "nl")` → `€ 35,09`; `format_money(3509, "USD", "en")` → `$35.09`."""
    code = normalize_currency(currency)
    amount = Decimal(amount_minor).scaleb(-exponent(code))
    # Babel takes the currency's fraction digits from CLDR, which agrees with our exponent table.
    return babel_numbers.format_currency(amount, code, locale=_safe_locale(locale))


def format_decimal(value: int | Decimal, locale: str | None) -> str:
    return babel_numbers.format_decimal(value, locale=_safe_locale(locale))


def format_percent(value: Decimal | float, locale: str | None) -> str:
    """`value` is a fraction: 0.2 → `20%` (en) / `20%` (nl)."""
    return babel_numbers.format_percent(value, locale=_safe_locale(locale), decimal_quantization=False)


def format_date(value: date | datetime, locale: str | None, format: str = "long") -> str:
    """`2026-12-02` → `December 2, 2026` (en) / `2 december 2026` (nl)."""
    day = value.date() if isinstance(value, datetime) else value
    return babel_dates.format_date(day, format=format, locale=_safe_locale(locale))


def format_datetime(value: datetime, locale: str | None, format: str = "medium", tz: str = "UTC") -> str:
    return babel_dates.format_datetime(
        value, format=format, tzinfo=babel_dates.get_timezone(tz), locale=_safe_locale(locale)
    )


def template_helpers(package: str, locale: str | None) -> dict[str, Callable[..., str]]:
    """What a Jinja2 template needs to speak the locale: pass it into the render context.

    Jinja2's i18n extension resolves `gettext`/`ngettext` from the context first, so `{% trans %}`
    blocks and `_()` calls use this locale without touching a shared environment.
    """
    tr = translations(package, locale)

    def _gettext(message: str, **params: Any) -> str:
        text = tr.ugettext(message)
        return text % params if params else text

    def _ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
        return tr.ungettext(singular, plural, n) % {"num": n, **params}

    return {
        "gettext": _gettext,
        "_": _gettext,
        "ngettext": _ngettext,
        "money": lambda amount, currency: format_money(amount, currency, locale),
        "date": lambda value, format="long": format_date(value, locale, format),
        "number": lambda value: format_decimal(value, locale),
    }
