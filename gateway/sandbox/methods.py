"""The sandbox's deterministic test payment methods, in the spirit of Stripe's test cards.

Each name behaves the same way every time: that is what makes them useful in tests. The table says what a
charge on the method does; `service.py` carries it out (delays follow the payment's clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Outcome(StrEnum):
    SUCCEEDS = "succeeds"  # succeeded at once
    DECLINES = "declines"  # failed at once, with the method's decline code
    CHALLENGE = "challenge"  # requires_action: the customer completes the 3-D Secure page
    SETTLES_LATER = "settles_later"  # processing, then succeeded after `settle_after`
    ANSWERS_LATE = "answers_late"  # succeeded, but the HTTP answer comes after the client gave up


@dataclass(frozen=True, slots=True)
class TestMethod:
    name: str
    type: str  # card | sepa_debit
    brand: str | None
    last4: str
    outcome: Outcome
    decline_code: str | None = None
    decline_message: str | None = None
    settle_after: timedelta | None = None  # SETTLES_LATER (None = the sandbox's async-card delay)
    charged_back_after: timedelta | None = None  # after settling, the payment is charged back
    # Account updater: at expiry the network gives a new expiry (`payment_method.updated`) ...
    updatable: bool = False
    # ... or cannot, and the card is announced `payment_method.expiring` 30 days ahead.
    expires_soon: bool = False
    # The card's expiry is already past (the decline comes from the expiry, checked on every charge).
    expired: bool = False

    __test__ = False  # not a pytest class, whatever its name says


SEPA_SETTLEMENT = timedelta(days=2)
SEPA_CHARGEBACK = timedelta(days=7)
EXPIRING_NOTICE = timedelta(days=30)
# Cards that expire "soon" (updatable, expiring) expire at the end of the month this many months after
# they were saved, so a test on a clock reaches the updater within a season.
SOON_MONTHS = 3
# Other cards expire at the end of the year this many years after they were saved.
CARD_YEARS = 4
# What the account updater gives an updatable card: the same month, this many years later.
RENEWED_YEARS = 3


def _card(name: str, last4: str, outcome: Outcome, **kw: object) -> TestMethod:
    brand = kw.pop("brand", "visa")
    return TestMethod(name, "card", str(brand), last4, outcome, **kw)  # type: ignore[arg-type]


def _decline(name: str, last4: str, code: str, message: str, **kw: object) -> TestMethod:
    return _card(name, last4, Outcome.DECLINES, decline_code=code, decline_message=message, **kw)


TEST_METHODS: dict[str, TestMethod] = {
    m.name: m
    for m in (
        _card("card_ok", "4242", Outcome.SUCCEEDS),
        # soft declines: worth retrying later
        _decline("card_insufficient_funds", "9995", "insufficient_funds", "The card has insufficient funds."),
        _decline(
            "card_processing_error", "0119", "processing_error", "An error occurred processing the card."
        ),
        _decline("card_try_again_later", "0101", "try_again_later", "The issuer asks to try again later."),
        # hard declines: never retry on the same card
        _decline("card_lost", "9987", "lost_card", "The card was reported lost."),
        _decline("card_stolen", "9979", "stolen_card", "The card was reported stolen."),
        _decline(
            "card_do_not_honor", "0002", "do_not_honor", "The issuer declined the card.", brand="mastercard"
        ),
        _decline("card_expired", "0069", "expired_card", "The card has expired.", expired=True),
        _card("card_3ds", "3184", Outcome.CHALLENGE),
        _card("card_async", "0077", Outcome.SETTLES_LATER),
        _card("card_timeout", "0341", Outcome.ANSWERS_LATE),
        TestMethod(
            "sepa_ok", "sepa_debit", None, "3000", Outcome.SETTLES_LATER, settle_after=SEPA_SETTLEMENT
        ),
        TestMethod(
            "sepa_chargeback",
            "sepa_debit",
            None,
            "1000",
            Outcome.SETTLES_LATER,
            settle_after=SEPA_SETTLEMENT,
            charged_back_after=SEPA_CHARGEBACK,
        ),
        _card("card_updatable", "4444", Outcome.SUCCEEDS, brand="mastercard", updatable=True),
        _card("card_expiring", "4449", Outcome.SUCCEEDS, brand="amex", expires_soon=True),
    )
}

METHOD_TYPES = ("card", "sepa_debit")
EXPIRED_CARD_MESSAGE = "The card has expired."


def methods_of_types(types: tuple[str, ...] | list[str]) -> list[TestMethod]:
    return [m for m in TEST_METHODS.values() if m.type in types]
