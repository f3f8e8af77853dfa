"""Stored first responses for `Idempotency-Key` (ARCHITECTURE.md §3).

A key is scoped to the API key that sent it. The row is inserted *before* the request runs (the unique
constraint makes a concurrent duplicate fail fast with 409 instead of running twice), completed with the
response afterwards, and deleted when the request failed with a 5xx so that a retry can run again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    # WARNING: the hash covers method, path and body. Changing what it covers makes every stored key
    # look like "reused with a different request" until they expire.
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None]
    response_headers: Mapped[list[Any] | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("scope", "key"),)
