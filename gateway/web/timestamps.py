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
        pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$",
        description="ISO 8601 timestamp with a timezone, e.g. 2026-01-31T09:00:00Z",
        extra_json_schema={"format": "date-time"},
    ),
]


def parse_timestamp(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return ensure_utc(datetime.fromisoformat(value))
    except ValueError:
        raise ValidationFailed(f"{field} is not a valid ISO 8601 timestamp", field=field) from None
