"""Injected time. Every service takes a `Clock`; nothing calls `datetime.now()` on its own.

All datetimes are timezone-aware UTC. `FrozenClock` is for tests and for the embedded scheduler's
dry runs; per-customer test clocks (subscriptions domain) build on the same idea with stored time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from gateway.kernel.errors import ValidationFailed


class NaiveDatetime(ValidationFailed, ValueError):
    """A naive datetime reached the domain: refused with a 422 if it came from a request."""

    code = "naive_datetime"


def ensure_utc(value: datetime) -> datetime:
    """Return `value` converted to UTC; refuse naive datetimes (they are ambiguous, hence bugs)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetime(f"naive datetime refused: {value!r}")
    return value.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """The one text form of a timestamp, wherever Tiergate writes one (responses, event and webhook
    payloads, metrics, the privacy export): ISO 8601 in UTC with a `Z`, fractional seconds only when
    there are any. It is what msgspec writes for the API's datetime fields, so the whole API agrees."""
    return ensure_utc(value).isoformat().removesuffix("+00:00") + "Z"


def isoformat_or_none(value: datetime | None) -> str | None:
    """A timestamp for JSON (`format_timestamp`), or None when there is none."""
    return format_timestamp(value) if value is not None else None


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock:
    """A clock that only moves when told to."""

    def __init__(self, at: datetime) -> None:
        self._now = ensure_utc(at)

    def now(self) -> datetime:
        return self._now

    def set(self, at: datetime) -> None:
        self._now = ensure_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        self._now = self._now + delta
        return self._now
