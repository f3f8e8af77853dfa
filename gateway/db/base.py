"""Declarative base with a naming convention (so alembic produces stable constraint names on both
SQLite and PostgreSQL) and the column types every model uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import JSON as SA_JSON
from sqlalchemy import MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# DateTimeUTC refuses naive datetimes at bind time and always returns aware UTC values, on SQLite too.
UTCDateTime = DateTimeUTC(timezone=True)
# advanced-alchemy's JsonB breaks on SQLAlchemy 2.1 (it calls a removed util); this is the same idea.
JSON = SA_JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def id_column() -> Mapped[str]:
    return mapped_column(String(40), primary_key=True)
