"""The `tiergate` command: serve, worker, migrate, seed-demo, demo (seed + serve), sandbox."""

from __future__ import annotations

import asyncio
import os

import click

from gateway.config import load_settings
from gateway.db.session import Database
from gateway.kernel.clock import SystemClock
from gateway.logs import configure_logging


def _db() -> Database:
    return Database(load_settings().database_url)


async def _migrate(db: Database) -> None:
    from gateway.db.migrate import upgrade_head

    await upgrade_head(db)


async def _seed(db: Database, api_key: str | None) -> None:
    from gateway.demo import seed_demo
    from gateway.payments.lookup import billing_config as payments_billing_config

    await _migrate(db)
    async with db.unit_of_work() as session:
        result = await seed_demo(
            session, SystemClock(), api_key=api_key, config=payments_billing_config(load_settings())
        )
    await db.dispose()
    if not result.created:
        click.echo("Demo catalog already present; nothing to do.")
        if api_key:
            click.echo(f"API key (from TIERGATE_BOOTSTRAP_API_KEY): {api_key}")
        return
    click.echo("Demo catalog created: plans basic, pro, enterprise (monthly and yearly, USD and EUR).")
    for name, customer_id in result.customers.items():
        click.echo(f"  customer {customer_id}  {name}")
    click.echo(f"\nAPI key (full scope, shown once): {result.api_key}")
    click.echo(f"  export TIERGATE_KEY={result.api_key}")


@click.group()
@click.version_option(package_name="tiergate", prog_name="tiergate", message="%(prog)s %(version)s")
def main() -> None:
    """Tiergate: entitlements, access control and subscription billing."""
    configure_logging(load_settings().log_level)


@main.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head)."""
    db = _db()
    asyncio.run(_migrate(db))
    click.echo("database is at the latest revision")


@main.command("seed-demo")
def seed_demo_command() -> None:
    """Load the demo catalog and customers, and print an API key."""
    db = _db()
    asyncio.run(_seed(db, load_settings().bootstrap_api_key or None))


@main.command()
@click.option("--host", default=None, help="Listen address (default: config `host`).")
@click.option("--port", default=None, type=int, help="Port (default: config `port`).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--demo", is_flag=True, help="Seed the demo catalog first (idempotent).")
def serve(host: str | None, port: int | None, workers: int, demo: bool) -> None:
    """Run the HTTP service."""
    import uvicorn

    # The app (built by uvicorn's factory, in each worker) reads its settings from the environment: the
    # address given here is the one it serves on, and what it derives its token issuer and SSO redirect
    # URI from (unless token_issuer / sso_public_url are configured).
    if host is not None:
        os.environ["TIERGATE_HOST"] = host
    if port is not None:
        os.environ["TIERGATE_PORT"] = str(port)
    settings = load_settings()
    if demo:
        key = settings.bootstrap_api_key or "tg_sk_demo_local_only"
        os.environ["TIERGATE_BOOTSTRAP_API_KEY"] = key
        asyncio.run(_seed(_db(), key))
    uvicorn.run(
        "gateway.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # uvicorn's own loggers propagate to the root logger: one format (gateway/logs.py).
        log_config=None,
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Listen address.")
@click.option("--port", default=8010, show_default=True, type=int, help="Port.")
@click.option(
    "--store",
    default=None,
    help="SQLite file the sandbox keeps its accounts and charges in (default: config "
    "`payments_sandbox_store`); ':memory:' keeps nothing.",
)
@click.option(
    "--public-url", default="", help="Where browsers reach it (hosted pages' links); default: as asked."
)
def sandbox(host: str, port: int, store: str | None, public_url: str) -> None:
    """Run the sandbox payment provider alone (test cards, 3-D Secure page, SEPA, webhooks).

    Tiergate talks to it over HTTP like to any provider: give a provider account of kind `sandbox` the
    credentials {"base_url": "http://HOST:PORT", "api_key": ..., "webhook_secret": ...} that
    `POST /v1/accounts` on it returns."""
    import uvicorn

    from gateway.sandbox import SandboxConfig, create_sandbox_app

    app = create_sandbox_app(
        store or load_settings().payments_sandbox_store, config=SandboxConfig(public_url=public_url)
    )
    click.echo(f"sandbox payment provider on http://{host}:{port} (store: {store or 'default'})")
    uvicorn.run(app, host=host, port=port, log_level=load_settings().log_level.lower(), log_config=None)


@main.command()
def worker() -> None:
    """Run background jobs without serving HTTP: the billing run (renewals and their invoices) and the
    outbox relay (provisioning, audit log, outgoing webhooks).

    With `redis_url` set, saq schedules the billing run (cron, every minute; run as many workers as you
    like); without, an in-process loop runs it every `scheduler_interval_seconds`."""
    from gateway.worker.scheduler import run_worker

    asyncio.run(run_worker(load_settings()))


@main.command("secret-key")
@click.option("--id", "key_id", default="k1", show_default=True, help="Key id (rotation: k2, k3…).")
def secret_key_command(key_id: str) -> None:
    """Print a fresh key entry for TIERGATE_SECRET_KEY (encryption of stored secrets).

    To rotate, put the new entry first and keep the old one after it ("k2:…,k1:…"); every start re-seals
    stored secrets with the first key, after which the old entry can be dropped."""
    from gateway.security.secretbox import KEY_ID, new_key_spec

    if not KEY_ID.match(key_id):
        raise click.BadParameter("1-32 letters, digits, '-' or '_'", param_hint="--id")
    click.echo(new_key_spec(key_id))


@main.command("billing-run")
def billing_run_command() -> None:
    """Renew and invoice every subscription due now, once, and print what was done."""
    from gateway.billing.run import billing_run
    from gateway.payments.lookup import billing_config as payments_billing_config

    settings = load_settings()

    async def once() -> None:
        db = _db()
        try:
            result = await billing_run(
                db,
                SystemClock(),
                payments_billing_config(settings),
                batch_size=settings.billing_run_batch_size,
            )
        finally:
            await db.dispose()
        click.echo(
            f"{result.steps} steps on {result.subscriptions} subscriptions in {result.batches} batches, "
            f"{result.seconds:.2f} s"
        )

    asyncio.run(once())


if __name__ == "__main__":
    main()
