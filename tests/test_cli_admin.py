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


def test_admin_login_prints_a_one_time_link_and_stores_only_its_hash(env: dict[str, str]) -> None:
    import hashlib

    run(env, "migrate")
    first = run(env, "admin-login", "Boss@Ops.example")
    assert "Created staff member Boss@Ops.example (owner)." in first
    [link] = [line for line in first.splitlines() if "/admin/login/" in line]
    token = link.rsplit("/", 1)[1]
    assert link == f"http://127.0.0.1:8000/admin/login/{token}" and token.startswith("tglink_")
    # The second staff member needs a role; an unknown e-mail without one is a message.
    result = CliRunner().invoke(cli.main, ["admin-login", "sam@ops.example"], env=env)
    assert result.exit_code == 1 and "give --role" in result.output
    assert "(support)" in run(env, "admin-login", "sam@ops.example", "--role", "support")
    assert "Created" not in run(env, "admin-login", "boss@ops.example")

    async def stored() -> list[tuple[str, str]]:
        db = Database(env["TIERGATE_DATABASE_URL"], pooled=False)
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT m.email, l.token_hash FROM staff_login_links l "
                    "JOIN staff_members m ON m.id = l.staff_id ORDER BY l.id"
                )
            )
            result = [(str(a), str(b)) for a, b in rows.all()]
        await db.dispose()
        return result

    links = asyncio.run(stored())
    assert [email for email, _ in links] == ["boss@ops.example", "sam@ops.example", "boss@ops.example"]
    assert links[0][1] == hashlib.sha256(token.encode()).hexdigest()


def test_seed_demo_history_plays_a_year_on_a_test_clock(env: dict[str, str]) -> None:
    out = run(env, "seed-demo", "--history")
    assert "Demo catalog created" in out
    # Alder Pro, Cedar Enterprise, Dogwood Pro, Elm Pro, Fir Enterprise, Ginkgo Basic; Birch churned.
    expected = 3 * 2900 + 2 * 9900 + 900
    assert f"MRR now: {expected} USD cents; ARR {expected * 12}." in out
    assert re.search(r"Test clock clock_\S+ \(Demo year\): 7 customers over 12 months\.", out)
