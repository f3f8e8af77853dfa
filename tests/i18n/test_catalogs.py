"""Every string a package shows exists, translated, in English and Dutch (WEB.md: Language).

A package's catalogs are `gateway/<package>/locales/{en,nl}.po`. Messages are found the way
`pybabel extract` finds them: `_()`, `gettext()`, `ngettext()` in Python and `{% trans %}` / `_()` in
Jinja2 templates under the package.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from babel.messages import pofile
from babel.messages.extract import extract_from_dir

from gateway import i18n

GATEWAY = Path(i18n.__file__).resolve().parents[1]
METHODS = [("**/templates/**.html", "jinja2"), ("**/templates/**.txt", "jinja2"), ("**.py", "python")]
OPTIONS = {"**/templates/**": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2)}


def _catalog(package: str, language: str):  # type: ignore[no-untyped-def]
    with i18n.catalog_path(package, language).open("rb") as handle:
        return pofile.read_po(handle)


def _extracted(package: str) -> set[str]:
    found: set[str] = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(GATEWAY / package), METHODS, options_map=OPTIONS, keywords=KEYWORDS
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


PACKAGES = i18n.catalog_packages()


@pytest.mark.parametrize("package", PACKAGES)
def test_every_language_has_every_message_translated(package: str) -> None:
    ids = {
        lang: {m.id if isinstance(m.id, str) else m.id[0] for m in _catalog(package, lang) if m.id}
        for lang in i18n.SUPPORTED_LANGUAGES
    }
    assert ids["en"] == ids["nl"], f"{package}: catalogs differ: {ids['en'] ^ ids['nl']}"
    for lang in i18n.SUPPORTED_LANGUAGES:
        untranslated = [
            m.id
            for m in _catalog(package, lang)
            if m.id and not all(m.string if isinstance(m.string, tuple) else (m.string,))
        ]
        assert untranslated == [], f"{package}/{lang}.po: untranslated {untranslated}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_string_used_in_code_and_templates_is_in_the_catalogs(package: str) -> None:
    known = {m.id if isinstance(m.id, str) else m.id[0] for m in _catalog(package, "en") if m.id}
    missing = _extracted(package) - known
    assert missing == set(), f"{package}: strings without a catalog entry: {sorted(missing)}"


def test_babel_formats_money_dates_and_locales() -> None:
    assert i18n.format_money(3509, "EUR", "nl") == "€\xa035,09"
    assert i18n.format_money(3509, "USD", "en") == "$35.09"
    assert i18n.format_money(500, "JPY", "en") == "¥500"
    assert i18n.format_date(date(2026, 12, 2), "nl") == "2 december 2026"
    assert i18n.format_date(date(2026, 12, 2), "en") == "December 2, 2026"
    assert i18n.normalize_locale("nl-NL") == "nl_NL"
    assert i18n.language_of("nl_BE") == "nl"
    assert i18n.language_of(None) == "en"
    for bad in ("", "xx", "fr", "nl-ZZZZ", "nl_XX", "e" * 40):
        with pytest.raises(i18n.UnsupportedLocale):
            i18n.normalize_locale(bad)
