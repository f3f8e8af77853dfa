"""The payment state machine and decline classification, as properties."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.errors import InvalidTransition
from gateway.payments.domain import (
    PAYMENT_TRANSITIONS,
    TERMINAL,
    PaymentStatus,
    invoice_attempt_key,
    is_hard_decline,
    refundable,
    transition,
)
from gateway.payments.port import HARD_DECLINES, DeclineCode

AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Row:
    status: str
    settled_at: datetime | None = None


@given(st.lists(st.sampled_from(list(PaymentStatus)), max_size=12))
def test_a_payment_only_ever_moves_along_the_table(requests: list[PaymentStatus]) -> None:
    row = Row(PaymentStatus.REQUIRES_PAYMENT_METHOD.value)
    path = [PaymentStatus(row.status)]
    for wanted in requests:
        current = PaymentStatus(row.status)
        if wanted in PAYMENT_TRANSITIONS[current]:
            assert transition(row, wanted, AT) is current
            path.append(wanted)
        else:
            with pytest.raises(InvalidTransition):
                transition(row, wanted, AT)
            assert row.status == current.value  # a refused transition changes nothing
    for before, after in itertools.pairwise(path):
        assert after in PAYMENT_TRANSITIONS[before] and before not in TERMINAL
    settled = {PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.CANCELED}
    assert (row.settled_at is not None) == any(s in settled for s in path)


def test_the_table_is_what_the_issue_says() -> None:
    assert {PaymentStatus.FAILED, PaymentStatus.CANCELED} == TERMINAL
    assert PaymentStatus.PROCESSING in PAYMENT_TRANSITIONS[PaymentStatus.REQUIRES_PAYMENT_METHOD]
    for settled in ("succeeded", "failed", "requires_action", "canceled", "unknown"):
        assert PaymentStatus(settled) in PAYMENT_TRANSITIONS[PaymentStatus.PROCESSING]
    assert PaymentStatus.SUCCEEDED in PAYMENT_TRANSITIONS[PaymentStatus.UNKNOWN]


@given(st.sampled_from(list(DeclineCode)))
def test_hard_declines_are_the_ports(code: DeclineCode) -> None:
    assert is_hard_decline(code.value) is (code in HARD_DECLINES)


@given(st.text(max_size=20).filter(lambda t: t not in {c.value for c in DeclineCode}))
def test_unknown_decline_codes_are_soft(code: str) -> None:
    assert not is_hard_decline(code)


@given(st.integers(1, 10**9), st.integers(0, 10**9))
def test_refundable_never_negative_and_never_above_the_payment(amount: int, refunded: int) -> None:
    left = refundable(amount, refunded)
    assert 0 <= left <= amount and (left == 0 or left + refunded == amount)


@given(st.text(min_size=1, max_size=30), st.integers(1, 1000))
def test_attempt_keys_are_derived_from_the_invoice_and_attempt(invoice: str, n: int) -> None:
    assert invoice_attempt_key(invoice, n) == f"invoice:{invoice}:attempt:{n}"
    assert invoice_attempt_key(invoice, n) != invoice_attempt_key(invoice, n + 1)
