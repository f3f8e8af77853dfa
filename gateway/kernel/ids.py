"""Prefixed, time-ordered identifiers (`cus_01J…`), Stripe-style, so an id names its resource type.

The body is a ULID (48-bit millisecond time + 80 random bits, Crockford base32): lexicographic order
follows creation order, which gives cursor pagination a stable order for free.
"""

from __future__ import annotations

import secrets
import threading
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


# ULID's monotonic mode: ids made within one millisecond (a loop writing audit entries, a billing batch)
# get randomness + 1 instead of fresh bits, so ordering by id is creation order within a process, as
# cursor pagination and "oldest first" lists expect. The lock keeps two threads from minting one id.
_lock = threading.Lock()
_last_millis = 0
_last_randomness = 0
_MAX_RANDOMNESS = 2**80 - 1


def new_id(prefix: str) -> str:
    # Wall time is right here even under test clocks: ids only need a stable order, not domain time.
    global _last_millis, _last_randomness
    millis = time.time_ns() // 1_000_000
    with _lock:
        if millis <= _last_millis:  # the same millisecond, or the wall clock stepped back
            millis, randomness = _last_millis, _last_randomness + 1
            if randomness > _MAX_RANDOMNESS:  # 2^80 ids in one millisecond: borrow the next one
                millis, randomness = millis + 1, secrets.randbits(80)
        else:
            randomness = secrets.randbits(80)
        _last_millis, _last_randomness = millis, randomness
    return f"{prefix}_{ulid_body(millis, randomness)}"
