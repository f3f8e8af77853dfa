"""Cursor pagination: opaque cursors over a stable, unique sort key (the resource id)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from gateway.kernel.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ValidationFailed("malformed pagination cursor", field="starting_after") from exc
    if not value or len(value) > 64 or not value.isprintable():
        raise ValidationFailed("malformed pagination cursor", field="starting_after")
    return value


def check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise ValidationFailed(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None

    @classmethod
    def from_overfetch(cls, rows: Sequence[T], limit: int, key: str = "id") -> Page[T]:
        """Build a page from `limit + 1` fetched rows: the extra row only says whether more exist."""
        has_more = len(rows) > limit
        items = list(rows[:limit])
        cursor = encode_cursor(getattr(items[-1], key)) if has_more and items else None
        return cls(items=items, next_cursor=cursor)
