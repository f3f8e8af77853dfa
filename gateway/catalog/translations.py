"""Names of plans (tiers) and products in the customer's language.

`name_translations` maps a locale to a name: {"nl": "Zakelijk"}. Keys are stored as
`gateway.i18n.normalize_locale` gives them (`nl-NL` → `nl_NL`), so a lookup can try the exact locale first
and then its language: a Belgian customer (`nl_BE`) sees the `nl` name when there is no `nl_BE` one.
"""

from __future__ import annotations

from typing import Any, Protocol

from gateway.i18n import UnsupportedLocale, normalize_locale
from gateway.kernel.errors import ValidationFailed

MAX_TRANSLATIONS = 20
MAX_NAME_LENGTH = 200


class Named(Protocol):
    name: str
    name_translations: dict[str, Any] | None


def check_name_translations(value: dict[str, str] | None) -> dict[str, str] | None:
    """Normalised keys, stripped non-empty names; ValidationFailed naming `name_translations` otherwise."""
    if value is None:
        return None
    if len(value) > MAX_TRANSLATIONS:
        raise ValidationFailed(f"at most {MAX_TRANSLATIONS} translations", field="name_translations")
    clean: dict[str, str] = {}
    for key, name in value.items():
        try:
            locale = normalize_locale(key)
        except UnsupportedLocale as exc:
            raise ValidationFailed(str(exc), field="name_translations") from None
        text = name.strip()
        if not text or len(text) > MAX_NAME_LENGTH:
            raise ValidationFailed(
                f"the {locale} name must be 1-{MAX_NAME_LENGTH} characters", field="name_translations"
            )
        clean[locale] = text
    return clean or None


def display_name(obj: Named, locale: str | None) -> str:
    """The object's name for a reader of `locale`: exact locale, then its language, then `name`."""
    translations = obj.name_translations or {}
    if not locale or not translations:
        return obj.name
    try:
        exact = normalize_locale(locale)
    except UnsupportedLocale:
        return obj.name
    language = exact.split("_", 1)[0]
    return str(translations.get(exact) or translations.get(language) or obj.name)
