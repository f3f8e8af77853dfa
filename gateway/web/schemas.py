"""Helpers for request/response structs shared by every domain."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, Struct

# Free-form metadata on any object, with Stripe's limits: 50 pairs, keys up to 40 characters, values up
# to 500 (unbounded values were accepted and stored).
MetadataKey = Annotated[str, Meta(min_length=1, max_length=40)]
MetadataValue = Annotated[str, Meta(max_length=500)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Meta(max_length=50)]


def changes_of(update: Struct) -> dict[str, Any]:
    """The fields a partial update actually sent (UNSET ones are left out)."""
    return {k: v for k, v in msgspec.structs.asdict(update).items() if v is not UNSET}
