"""What the console's forms share: the submitted values, and typed text read as money, counts and days.
Each reader raises `ValidationFailed` naming the field, so a page shows the error beside it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.kernel.errors import ValidationFailed
from gateway.kernel.money import UnknownCurrency, exponent


def form_values(form: Any, fields: tuple[str, ...], *, limit: int = 200) -> dict[str, str]:
    """Each field's submitted text, trimmed and cut to `limit` ("" when missing)."""
    return {name: str(form.get(name) or "").strip()[:limit] for name in fields}


def minor_units(text: str, currency: str, field: str) -> int:
    """ "5" or "5.00" of `currency` in minor units (500); more decimals than the currency has is refused."""
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():  # also "NaN", "sNaN", "Infinity", which Decimal reads
        raise ValidationFailed("enter an amount such as 5.00", field=field)
    try:
        digits = exponent(currency)
    except UnknownCurrency:
        raise ValidationFailed(f"{currency!r} is not an ISO 4217 currency", field="currency") from None
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value() or minor <= 0:
        raise ValidationFailed("enter a positive amount with at most the currency's decimals", field=field)
    return int(minor)


def whole(text: str, field: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValidationFailed("enter a whole number of at least 1", field=field)
    return int(text)


def end_of_day(text: str, field: str) -> datetime | None:
    """A day typed as YYYY-MM-DD: the code works until that day's end (UTC)."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ValidationFailed("enter a day as YYYY-MM-DD", field=field) from None
    return day.replace(hour=23, minute=59, second=59)
