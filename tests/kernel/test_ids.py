"""Ids: the fast encoding is checked against a digit-by-digit reference, and ids sort by creation time."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.ids import CROCKFORD, new_id, ulid_body


def reference_b32(value: int, length: int) -> str:
    """Crockford base32, `length` digits, most significant first: the ULID spec, written plainly."""
    digits = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        digits.append(CROCKFORD[rem])
    return "".join(reversed(digits))


@given(st.integers(0, 2**50 - 1), st.integers(0, 2**80 - 1))
def test_fast_encoding_matches_the_reference(millis: int, randomness: int) -> None:
    assert ulid_body(millis, randomness) == reference_b32(millis, 10) + reference_b32(randomness, 16)


@given(st.integers(0, 2**50 - 2), st.integers(0, 2**80 - 1), st.integers(0, 2**80 - 1))
def test_a_later_millisecond_sorts_after_whatever_the_randomness(millis: int, a: int, b: int) -> None:
    assert ulid_body(millis, a) < ulid_body(millis + 1, b)


def test_new_ids_carry_their_prefix_and_the_current_time() -> None:
    before = time.time_ns() // 1_000_000
    ident = new_id("in")
    after = time.time_ns() // 1_000_000
    prefix, body = ident.split("_")
    assert prefix == "in" and len(body) == 26 and set(body) <= set(CROCKFORD)
    assert reference_b32(before, 10) <= body[:10] <= reference_b32(after, 10)
    assert len({new_id("x") for _ in range(1000)}) == 1000


def test_ids_made_in_one_millisecond_still_sort_in_creation_order() -> None:
    ids = [new_id("x") for _ in range(5000)]  # far more than one per millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
