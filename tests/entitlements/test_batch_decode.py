"""The lean batch route's fast decoding accepts exactly the bodies the strict type accepts, with the same
values (gateway/entitlements/batch_decode.py): a property over generated bodies, plus the edge cases."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.entitlements import schemas as s
from gateway.entitlements.batch_decode import decode_batch

STRICT = msgspec.json.Decoder(s.BatchCheckRequest, strict=True)

# Mostly valid characters, with the ones each pattern refuses mixed in (newline, space, capitals for a
# feature key, a NUL, non-ASCII), so both sides of every pattern are exercised.
ALPHABET = "abcXYZ019_./*-" + "\n \x00éA"
values = st.one_of(st.none(), st.text(ALPHABET, min_size=0, max_size=8))
items = st.fixed_dictionaries(
    {"customer": st.text("cus_01", min_size=1, max_size=6)},
    optional={"user": values, "resource": values, "action": values, "feature": values},
)


def strict(raw: bytes) -> s.BatchCheckRequest | None:
    try:
        return STRICT.decode(raw)
    except msgspec.DecodeError:
        return None


def plain(batch: Any) -> list[dict[str, Any]]:
    return [msgspec.structs.asdict(c) for c in batch.checks]


@settings(max_examples=400, deadline=None)
@given(st.lists(items, min_size=1, max_size=6))
def test_accepts_exactly_what_the_strict_type_accepts(checks: list[dict[str, Any]]) -> None:
    raw = json.dumps({"checks": checks}).encode()
    expected, got = strict(raw), decode_batch(raw)
    assert (got is None) == (expected is None), (checks, expected, got)
    if expected is not None and got is not None:
        assert plain(got) == plain(expected)


@pytest.mark.parametrize(
    ("resource", "accepted"),
    [
        ("projects/42", True),
        ("projects/42\n", True),  # as msgspec applies `^…$` (re.search): `$` matches before a final newline
        ("projects/42\n\n", False),
        ("\nprojects", False),
        ("a\nb", False),
        ("a\x00b", False),  # the joining separator inside a value must not split it into two
        ("projects 42", False),
        ("", False),
        ("x" * 201, False),
    ],
)
def test_edge_cases_match_the_strict_type(resource: str, accepted: bool) -> None:
    item = {"customer": "cus_1", "user": "usr_1", "resource": resource, "action": "read"}
    raw = json.dumps({"checks": [item, {"customer": "cus_1", "feature": "sso"}]}).encode()
    assert (strict(raw) is not None) is accepted
    assert (decode_batch(raw) is not None) is accepted


def test_refuses_what_is_not_a_batch() -> None:
    unknown_field = b'{"checks": [{"customer": "c"}], "x": 1}'
    for raw in (b"", b"[]", b'{"checks": []}', b'{"checks": [{}]}', unknown_field):
        assert strict(raw) is None
        assert decode_batch(raw) is None
