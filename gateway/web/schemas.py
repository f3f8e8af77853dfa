"""Helpers for request/response structs shared by every domain."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, Struct


def changes_of(update: Struct) -> dict[str, Any]:
    """The fields a partial update actually sent (UNSET ones are left out)."""
    return {k: v for k, v in msgspec.structs.asdict(update).items() if v is not UNSET}
