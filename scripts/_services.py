"""Which real services this machine offers the test suite (sourced by scripts/test through `eval`).

Prints shell lines: `export TIERGATE_TEST_POSTGRES_URL=…` / `export TIERGATE_TEST_REDIS_URL=…` for the
services that answer on their usual loopback ports, and `_tg_not_run=…`, the reasons for what will not run.
A URL already in the environment (`.ci/run` exports its own) is kept as it is and not probed.

PostgreSQL: the suite drops and recreates the schema of its database, so it gets one of its own,
`tiergate_test_<user>_<checkout hash>`, created here when missing; never a CI database, nor `postgres`.
"""

from __future__ import annotations

import asyncio
import getpass
import hashlib
import os
import re
import shlex
import socket
from pathlib import Path

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _database_name() -> str:
    """`tiergate_test_<user>_<checkout>`: two checkouts (worktrees) of one user never share a database."""
    try:
        user = getpass.getuser()
    except Exception:
        user = str(os.getuid())
    checkout = hashlib.sha1(str(Path(__file__).resolve().parent.parent).encode()).hexdigest()[:8]
    return f"tiergate_test_{re.sub(r'[^a-z0-9_]', '_', user.lower())[:24]}_{checkout}"


async def _postgres() -> tuple[str | None, str]:
    import asyncpg  # type: ignore[import-untyped]

    name = _database_name()
    try:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres", timeout=2)
    except Exception as exc:
        where = f"{PG_USER}@{PG_HOST}:{PG_PORT}"
        return None, f"PostgreSQL variants (no PostgreSQL at {where}: {type(exc).__name__})"
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        return None, f"PostgreSQL variants (cannot create database {name}: {type(exc).__name__})"
    finally:
        await conn.close()
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}", ""


def _redis() -> tuple[str | None, str]:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1) as sock:
            sock.settimeout(1)
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return f"redis://{REDIS_HOST}:{REDIS_PORT}/0", ""
    except OSError as exc:
        return None, f"Redis variants (no Redis at {REDIS_HOST}:{REDIS_PORT}: {type(exc).__name__})"
    return None, f"Redis variants (no PONG from {REDIS_HOST}:{REDIS_PORT})"


def main() -> None:
    not_run = []
    if not os.environ.get("TIERGATE_TEST_POSTGRES_URL"):
        url, reason = asyncio.run(_postgres())
        if url:
            print(f"export TIERGATE_TEST_POSTGRES_URL={shlex.quote(url)}")
        else:
            not_run.append(reason)
    if not os.environ.get("TIERGATE_TEST_REDIS_URL"):
        url, reason = _redis()
        if url:
            print(f"export TIERGATE_TEST_REDIS_URL={shlex.quote(url)}")
        else:
            not_run.append(reason)
    print(f"_tg_not_run={shlex.quote('; '.join(not_run))}")


if __name__ == "__main__":
    main()
