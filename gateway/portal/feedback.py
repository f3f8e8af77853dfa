"""The cancel flow's question ("why are you canceling?") and its retention offer.

The answer is stored with the cancellation by the subscriptions service (`feedback`, `comment`), the
same call `POST /v1/subscriptions/{id}/cancel` makes; this module only words the choices."""

from __future__ import annotations

from collections.abc import Callable

from gateway.catalog.models import Coupon
from gateway.subscriptions.domain import CancellationFeedback


def reasons(gettext: Callable[..., str]) -> list[tuple[str, str]]:
    """(value, label) per reason, in the order the form lists them."""
    labels = {
        CancellationFeedback.TOO_EXPENSIVE: gettext("It is too expensive"),
        CancellationFeedback.MISSING_FEATURES: gettext("Features I need are missing"),
        CancellationFeedback.SWITCHED_SERVICE: gettext("I switched to another product"),
        CancellationFeedback.UNUSED: gettext("I don't use it enough"),
        CancellationFeedback.TECHNICAL_ISSUES: gettext("Technical problems"),
        CancellationFeedback.OTHER: gettext("Other"),
    }
    return [(reason.value, labels[reason]) for reason in CancellationFeedback]


def offer_text(
    gettext: Callable[..., str], money: Callable[[int, str], str], coupon: Coupon | None, currency: str
) -> str | None:
    """The retention coupon in words ("20 % off"), or None when there is none or it cannot be used."""
    if coupon is None or not coupon.active:
        return None
    if coupon.percent_off is not None:
        return gettext("%(percent)s %% off", percent=coupon.percent_off)
    if coupon.amount_off is not None and coupon.currency == currency:
        return gettext("%(amount)s off", amount=money(coupon.amount_off, currency))
    return None
