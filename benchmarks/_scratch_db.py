"""The benchmarks' scratch PostgreSQL databases: created when missing, so a benchmark runs on a fresh
machine with only the README's PostgreSQL (127.0.0.1:5432, trust auth)."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url


async def ensure_database(url: str) -> None:
    """Create the database `url` names when it does not exist (PostgreSQL only; SQLite makes its file)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql") or not parsed.database:
        return
    server = await asyncpg.connect(
        user=parsed.username or "postgres",
        password=parsed.password,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        database="postgres",
    )
    try:
        exists = await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database)
        if not exists:
            await server.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await server.close()
