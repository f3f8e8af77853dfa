"""Alembic environment: async engines, both SQLite (batch mode for ALTERs) and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from gateway.all_models import Base
from gateway.config import load_settings
from gateway.logs import configure_logging, resolve_format
from gateway.metering.partitions import is_partition_table

config = context.config
target_metadata = Base.metadata

if config.attributes.get("connection") is None and not logging.getLogger().handlers:
    # The `alembic` command on its own: the same log format as the service (gateway/logs.py).
    _settings = load_settings()
    configure_logging(_settings.log_level, resolve_format(_settings.log_format, _settings.database_url))


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().database_url


# Monthly partitions of usage_events are created at run time (gateway.metering.partitions), not by
# migrations: autogenerate and `alembic check` must not see them as tables to drop.
def _include_name(name: str | None, type_: str, _parent: object) -> bool:
    return not (type_ == "table" and name is not None and is_partition_table(name))


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
elif (connection := config.attributes.get("connection")) is not None:
    # Called from code (gateway.db.migrate) with a connection already open.
    _run_sync(connection)
else:
    asyncio.run(_run_async())
