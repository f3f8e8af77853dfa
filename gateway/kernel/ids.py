"""Prefixed, time-ordered identifiers (`cus_01J…`), Stripe-style, so an id names its resource type.

The body is a ULID (48-bit millisecond time + 80 random bits, Crockford base32): lexicographic order
follows creation order, which gives cursor pagination a stable order for free.
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _b32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        out.append(_ALPHABET[rem])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    # Wall time is right here even under test clocks: ids only need a stable order, not domain time.
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_b32(millis, 10)}{_b32(secrets.randbits(80), 16)}"
