"""Request timestamps: ISO 8601 strings with a timezone, nothing else.

msgspec's lax mode (which Litestar uses to convert request bodies) would accept `0` as the Unix epoch;
a billing system must not guess what a number means, so timestamps are strings we parse ourselves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from gateway.kernel.clock import ensure_utc
from gateway.kernel.errors import ValidationFailed

AwareTimestamp = Annotated[
    str,
    Meta(
        max_length=32,
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$",
        description="ISO 8601 timestamp with a timezone, e.g. 2026-01-31T09:00:00Z",
        extra_json_schema={"format": "date-time"},
    ),
]


# Years a timestamp of ours may fall in. Python's datetime ends at years 1 and 9999, and arithmetic near
# them (a month back from 0001-01-05, UTC of 0001-01-01T00:00+14:00) overflows; no billing date is there.
MIN_YEAR, MAX_YEAR = 1970, 2999


def parse_timestamp(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = ensure_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise ValidationFailed(f"{field} is not a valid ISO 8601 timestamp", field=field) from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise ValidationFailed(f"{field} must be between the years {MIN_YEAR} and {MAX_YEAR}", field=field)
    return parsed
