"""Prefixed, time-ordered identifiers (`cus_01J…`), Stripe-style, so an id names its resource type.

The body is a ULID (48-bit millisecond time + 80 random bits, Crockford base32): lexicographic order
follows creation order, which gives cursor pagination a stable order for free.
"""

from __future__ import annotations

import secrets
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two characters (10 bits) per lookup: 13 lookups for the 26 characters. Ids are made several times per
# renewal in the billing run, where a digit-by-digit loop showed in the profile.
_PAIRS = [a + b for a in CROCKFORD for b in CROCKFORD]
_SHIFTS = tuple(range(120, -1, -10))


def ulid_body(millis: int, randomness: int) -> str:
    """26 characters: 10 for the time (50 bits), 16 for 80 random bits, most significant first."""
    value = (millis << 80) | randomness  # 130 bits
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def new_id(prefix: str) -> str:
    # Wall time is right here even under test clocks: ids only need a stable order, not domain time.
    return f"{prefix}_{ulid_body(time.time_ns() // 1_000_000, secrets.randbits(80))}"
