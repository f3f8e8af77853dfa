"""Operators' commands through click's CliRunner, on a SQLite file and on PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from gateway import cli
from gateway.db.session import Database
from tests.conftest import IN_CI, POSTGRES_URL, sibling_database

BACKENDS = ["sqlite", *(["postgres"] if POSTGRES_URL or IN_CI else [])]


def fresh_postgres() -> str:
    name, url = sibling_database("cli")

    async def go() -> None:
        admin = Database(POSTGRES_URL, pooled=False)
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()

    asyncio.run(go())
    return url


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    url = (
        fresh_postgres() if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    )
    yield {"TIERGATE_DATABASE_URL": url, "TIERGATE_BOOTSTRAP_API_KEY": "", "TIERGATE_LOG_FORMAT": "console"}


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(cli.main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_admin_commands_on_a_seeded_database(env: dict[str, str], tmp_path: Path) -> None:
    seeded = run(env, "seed-demo")
    # Progress for the long steps, then the result.
    assert "migrating: alembic upgrade head" in seeded and "seeding:" in seeded
    assert "Demo catalog created" in seeded

    listed = run(env, "customers")
    assert "Tiny Studio" in listed and "owner@tiny.example" in listed
    tiny = next(line.split()[0] for line in listed.splitlines() if "Tiny Studio" in line)
    assert run(env, "customers", "--email", "owner@tiny.example").count("cus_") == 1

    created = run(env, "create-api-key", "--name", "ops", "--scope", "customers:read", "--customer", tiny)
    secret = re.search(r"secret \(shown once\): (tg_sk_\S+)", created)
    assert secret and f"tenant={tiny}" in created and "scopes=customers:read" in created

    assert "policy version 1 published: +35 -0" in run(env, "publish-policy", "policies/demo_policy.csv")
    policy = Path("policies/demo_policy.csv").read_text() + "p, role:admin, *, exports, read, allow\n"
    file = tmp_path / "policy.csv"
    file.write_text(policy)
    published = run(env, "publish-policy", str(file), "--note", "admins export")
    assert re.search(r"policy version 2 published: \+1 -0", published), published

    dry = run(env, "replay-events", "--consumer", "webhooks", "--from-seq", "1")
    assert "would replay" in dry
    assert "0 steps on 0 subscriptions" in run(env, "billing-run")  # nothing due yet on the wall clock


def test_bad_input_is_a_message_not_a_traceback(env: dict[str, str]) -> None:
    run(env, "migrate")
    result = CliRunner().invoke(cli.main, ["create-api-key", "--name", "x", "--scope", "nope"], env=env)
    assert result.exit_code == 1 and "invalid scopes" in result.output
    result = CliRunner().invoke(
        cli.main, ["replay-events", "--consumer", "nobody", "--from-seq", "1"], env=env
    )
    assert result.exit_code == 1 and "no relay consumer 'nobody'" in result.output
