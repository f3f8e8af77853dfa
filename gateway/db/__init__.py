"""Storage building blocks: declarative base, UTC datetime column type, sessions, outbox, idempotency."""

from gateway.db.base import Base, UTCDateTime
from gateway.db.session import Database

__all__ = ["Base", "Database", "UTCDateTime"]
