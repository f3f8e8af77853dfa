"""The `tiergate` command: serve (granian or uvicorn), worker, migrate, seed-demo, billing-run, sandbox, and
operators' admin commands (create-api-key, customers, publish-policy, replay-events, admin-login). Long
work prints its progress."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings, load_settings
from gateway.db.session import Database
from gateway.kernel.clock import SystemClock
from gateway.kernel.errors import DomainError
from gateway.logs import configure_logging, resolve_format


def _db() -> Database:
    return Database(load_settings().database_url)


async def _migrate(db: Database) -> None:
    from gateway.db.migrate import upgrade_head

    click.echo("migrating: alembic upgrade head ...", err=True)
    await upgrade_head(db)
    click.echo("migrating: done", err=True)


async def _seed(db: Database, api_key: str | None) -> None:
    from gateway.demo import seed_demo
    from gateway.payments.lookup import billing_config as payments_billing_config

    await _migrate(db)
    click.echo("seeding: catalog, tax rates, demo customers and subscriptions ...", err=True)
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
    settings = load_settings()
    configure_logging(settings.log_level, resolve_format(settings.log_format, settings.database_url))


@main.command()
def migrate() -> None:
    """Apply database migrations (alembic upgrade head)."""
    db = _db()
    asyncio.run(_migrate(db))
    click.echo("database is at the latest revision")


@main.command("seed-demo")
@click.option(
    "--history",
    is_flag=True,
    help="Also play a year of customers (sign-ups, upgrades, a churn) on a test clock, for the dashboard.",
)
def seed_demo_command(history: bool) -> None:
    """Load the demo catalog and customers, and print an API key."""
    db = _db()
    asyncio.run(_seed(db, load_settings().bootstrap_api_key or None))
    if history:
        asyncio.run(_seed_history())


# A year on a test clock, month by month: (month, action, customer, price). The MRR it ends with (USD
# cents) is in the command's output and in its test: Pro 2900 × 3 + Enterprise 9900 × 2 + Basic 900.
HISTORY: tuple[tuple[int, str, str, str], ...] = (
    (0, "subscribe", "Alder", "basic_monthly"),
    (0, "subscribe", "Birch", "basic_monthly"),
    (0, "subscribe", "Cedar", "pro_monthly"),
    (0, "subscribe", "Dogwood", "basic_monthly"),
    (2, "change", "Alder", "pro_monthly"),
    (3, "subscribe", "Elm", "pro_monthly"),
    (3, "subscribe", "Fir", "enterprise_monthly"),
    (5, "cancel", "Birch", ""),
    (7, "change", "Cedar", "enterprise_monthly"),
    (8, "subscribe", "Ginkgo", "basic_monthly"),
    (10, "change", "Dogwood", "pro_monthly"),
)
HISTORY_MONTHS = 12


async def _seed_history() -> None:
    """Play HISTORY through the HTTP API of an in-process Tiergate (every event flows as in production:
    billing on each advance, the relay's metrics), with a key made for it and revoked after."""
    import dataclasses

    from litestar.testing import AsyncTestClient

    from gateway.app import create_app
    from gateway.identity.service import ApiKeyService
    from gateway.kernel.clock import format_timestamp
    from gateway.kernel.periods import add_months

    settings = dataclasses.replace(load_settings(), relay_enabled=False, migrate_on_start=False)
    db = Database(settings.database_url)
    async with db.unit_of_work(actor="system:seed-demo") as session:
        key, secret = await ApiKeyService(session, SystemClock()).create(
            name="seed-demo history", scopes=["*"], tenant_id=None
        )
    # The app keeps its own database: the test client runs it on another event loop.
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {secret}"}
    wall = SystemClock().now()
    start = add_months(wall.replace(day=1, hour=0, minute=0, second=0, microsecond=0), -HISTORY_MONTHS)
    async with AsyncTestClient(app) as client:

        async def call(method: str, path: str, body: Any = None) -> Any:
            response = await client.request(method, path, json=body, headers=headers)
            if response.status_code >= 400:
                raise click.ClickException(f"{method} {path}: {response.status_code} {response.text}")
            return response.json()

        test_clock = await call(
            "POST", "/v1/test_clocks", {"name": "Demo year", "frozen_time": format_timestamp(start)}
        )
        click.echo(f"seeding: a year of history on test clock {test_clock['id']} ...", err=True)
        subscriptions: dict[str, str] = {}
        for month in range(HISTORY_MONTHS + 1):
            if month:
                at = format_timestamp(add_months(start, month))
                await call("POST", f"/v1/test_clocks/{test_clock['id']}/advance", {"frozen_time": at})
            for _, action, name, price in (step for step in HISTORY if step[0] == month):
                if action == "subscribe":
                    body = {"name": name, "currency": "USD", "test_clock": test_clock["id"]}
                    customer = await call("POST", "/v1/customers", body)
                    body = {"customer": customer["id"], "price": price, "trial_days": 0}
                    subscriptions[name] = (await call("POST", "/v1/subscriptions", body))["id"]
                elif action == "change":
                    await call(
                        "POST", f"/v1/subscriptions/{subscriptions[name]}/plan_change", {"price": price}
                    )
                else:
                    await call(
                        "POST", f"/v1/subscriptions/{subscriptions[name]}/cancel", {"at_period_end": False}
                    )
            while client.blocking_portal.call(app.state.relay.tick):
                pass
        metrics = await call("GET", f"/v1/metrics?currency=USD&test_clock={test_clock['id']}")
    async with db.unit_of_work(actor="system:seed-demo") as session:
        await ApiKeyService(session, SystemClock()).revoke(key.id, scope=None)
    await db.dispose()
    click.echo(f"Test clock {test_clock['id']} (Demo year): {len(subscriptions)} customers over 12 months.")
    click.echo(f"MRR now: {metrics['mrr']['end']} USD cents; ARR {metrics['arr']}.")


SERVERS = ("granian", "uvicorn")
RUNTIME_MODES = ("st", "mt")  # granian's RuntimeModes, but `auto`
TASK_IMPLS = ("asyncio", "rust")  # granian's TaskImpl
# What each worker process builds: the app, with its heap frozen after start-up (gateway/app.py).
APP_FACTORY = "gateway.app:create_served_app"


@main.command()
@click.option("--host", default=None, help="Listen address (default: config `host`).")
@click.option("--port", default=None, type=int, help="Port (default: config `port`).")
@click.option("--workers", default=1, show_default=True, help="Worker processes.")
@click.option("--demo", is_flag=True, help="Seed the demo catalog first (idempotent).")
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    default=None,
    help="HTTP server (default: config `server`, granian).",
)
def serve(host: str | None, port: int | None, workers: int, demo: bool, server: str | None) -> None:
    """Run the HTTP service."""
    # The app (built by the server's factory, in each worker) reads its settings from the environment: the
    # address given here is the one it serves on, and what it derives its token issuer and SSO redirect
    # URI from (unless token_issuer / sso_public_url are configured).
    if host is not None:
        os.environ["TIERGATE_HOST"] = host
    if port is not None:
        os.environ["TIERGATE_PORT"] = str(port)
    settings = load_settings()
    kind = server or settings.server
    if kind not in SERVERS:
        raise click.BadParameter(f"{kind!r}: one of {', '.join(SERVERS)}", param_hint="server (config)")
    if settings.server_runtime_mode not in RUNTIME_MODES:
        raise click.BadParameter(
            f"{settings.server_runtime_mode!r}: one of {', '.join(RUNTIME_MODES)}",
            param_hint="server_runtime_mode",
        )
    if settings.server_task_impl not in TASK_IMPLS:
        raise click.BadParameter(
            f"{settings.server_task_impl!r}: one of {', '.join(TASK_IMPLS)}", param_hint="server_task_impl"
        )
    if demo:
        key = settings.bootstrap_api_key or "tg_sk_demo_local_only"
        os.environ["TIERGATE_BOOTSTRAP_API_KEY"] = key
        asyncio.run(_seed(_db(), key))
    if workers > 1:
        _metrics_across_workers()
    if kind == "uvicorn":
        _serve_uvicorn(settings, workers)
    else:
        _serve_granian(settings, workers)


def _serve_uvicorn(settings: Settings, workers: int) -> None:
    import uvicorn

    # TCP_NODELAY: asyncio and uvloop set it on every connection they accept.
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=settings.log_level.lower(),
        # uvicorn's own loggers propagate to the root logger: one format (gateway/logs.py).
        log_config=None,
    )


def _serve_granian(settings: Settings, workers: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl
    from granian.log import LogLevels

    Granian(
        APP_FACTORY,
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=workers,
        # uvloop where installed (granian's `auto`), else asyncio. TCP_NODELAY: granian sets it on each
        # worker's listening socket, and Linux hands it to every connection accepted there.
        loop=Loops.auto,
        # One Python event loop per worker: a single-threaded Rust runtime beside it hands requests over
        # with less cross-thread jitter (the tail under load; numbers in gateway/config.py).
        runtime_mode=RuntimeModes(settings.server_runtime_mode),
        task_impl=TaskImpl(settings.server_task_impl),
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
        # Granian's own lines in Tiergate's one format (gateway/logs.py).
        log_dictconfig={
            "formatters": {
                "generic": {
                    "()": "gateway.logs.formatter",
                    "fmt": resolve_format(settings.log_format, settings.database_url),
                }
            },
            "handlers": {"console": {"formatter": "generic", "class": "logging.StreamHandler"}},
            "loggers": {"_granian": {"handlers": ["console"], "propagate": False}},
        },
    ).serve()


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


def _metrics_across_workers() -> None:
    """Several worker processes answer /metrics in turn: prometheus-client's multiprocess mode makes each
    of them answer for all (gateway/observability/metrics.py). The directory must be empty at start (old
    files would count dead processes), so a given one is emptied and a missing one is created."""
    import tempfile

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tiergate-metrics-")


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

    def progress(subscriptions: int, steps: int) -> None:
        click.echo(f"billing run: {subscriptions} subscriptions, {steps} steps so far", err=True)

    async def once() -> None:
        db = _db()
        try:
            from gateway.payments.collection import Collector, billing_run_collection
            from gateway.provisioning.jobs import Wiring

            wiring = Wiring.from_settings(settings)
            clock = SystemClock()
            collect = None
            if settings.billing_run_collect_concurrency > 0:
                collect = billing_run_collection(
                    Collector(
                        db,
                        clock,
                        wiring.payments.registry(wiring.secrets),
                        wiring.billing,
                        wiring.payments,
                        actor="system:collection",
                    ),
                    concurrency=settings.billing_run_collect_concurrency,
                    limit=2 * settings.billing_run_batch_size,
                )
            result = await billing_run(
                db,
                clock,
                payments_billing_config(settings),
                batch_size=settings.billing_run_batch_size,
                on_batch=progress,
                after_batch=collect,
            )
        finally:
            await db.dispose()
        click.echo(
            f"{result.steps} steps on {result.subscriptions} subscriptions in {result.batches} batches, "
            f"{result.seconds:.2f} s"
        )

    asyncio.run(once())


def _run(work: Callable[[AsyncSession], Awaitable[Any]]) -> Any:
    """One unit of work on the configured database, then close it."""

    async def go() -> Any:
        db = _db()
        try:
            async with db.unit_of_work(actor="system:cli") as session:
                return await work(session)
        finally:
            await db.dispose()

    try:
        return asyncio.run(go())
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc


@main.command("create-api-key")
@click.option("--name", required=True, help="What the key is for (shown in listings).")
@click.option("--scope", "scopes", multiple=True, default=("*",), show_default=True, help="Repeatable.")
@click.option("--customer", default=None, help="Bind the key to one tenant (a tenant key).")
def create_api_key(name: str, scopes: tuple[str, ...], customer: str | None) -> None:
    """Create an API key and print its secret (shown once, never stored)."""
    from gateway.identity.service import ApiKeyService

    async def work(session: AsyncSession) -> tuple[Any, str]:
        return await ApiKeyService(session, SystemClock()).create(
            name=name, scopes=list(scopes), tenant_id=customer
        )

    key, secret = _run(work)
    click.echo(f"{key.id}  {key.name}  scopes={','.join(key.scopes)}  tenant={key.tenant_id or '-'}")
    click.echo(f"secret (shown once): {secret}")


@main.command("customers")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--email", default=None, help="Only the customer with this e-mail address.")
def list_customers(limit: int, email: str | None) -> None:
    """List customers (newest first is not promised: the API's order, by id)."""
    from gateway.customers.repository import CustomerRepository
    from gateway.customers.service import CustomerService

    async def work(session: AsyncSession) -> list[tuple[str, str, str, str]]:
        service = CustomerService(CustomerRepository(session), SystemClock())
        page = await service.list(after=None, limit=limit, scope=None, email=email)
        return [(c.id, c.name, c.email or "-", c.currency or "-") for c in page.items]

    rows = _run(work)
    for row in rows:
        click.echo("  ".join(row))
    click.echo(f"{len(rows)} customers", err=True)


@main.command("publish-policy")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--note", default=None, help="Why (kept with the version).")
def publish_policy(path: Path, note: str | None) -> None:
    """Publish a Casbin policy file (the format of policies/demo_policy.csv) as the next version. Every
    replica picks it up through the change stream."""
    from gateway.authz.domain import parse_policy
    from gateway.authz.service import PolicyService

    text = path.read_text()

    async def work(session: AsyncSession) -> Any:
        snapshot = parse_policy(text, 0)
        return await PolicyService(session, SystemClock()).publish(
            snapshot.rules, note=note or f"from {path.name}", author="cli"
        )

    info = _run(work)
    click.echo(f"policy version {info.version} published: +{len(info.added)} -{len(info.removed)}")


@main.command("replay-events")
@click.option("--consumer", required=True, help="provisioning, metrics, audit or webhooks.")
@click.option("--from-seq", required=True, type=click.IntRange(min=1), help="First outbox seq to replay.")
@click.option("--yes", is_flag=True, help="Do it (without: say what would be replayed).")
def replay_events(consumer: str, from_seq: int, yes: bool) -> None:
    """Hand a relay consumer every outbox event from --from-seq again (its handlers are idempotent by
    event id: what was applied stays applied, what was lost or fixed since is applied now)."""
    from gateway.worker.replay import rewind_consumer

    async def work(session: AsyncSession) -> int:
        return await rewind_consumer(session, consumer, from_seq, apply=yes)

    count = _run(work)
    if yes:
        click.echo(f"{consumer}: {count} events from seq {from_seq} will be handed over again by the relay")
    else:
        click.echo(f"{consumer}: would replay {count} events from seq {from_seq} (add --yes)")


if __name__ == "__main__":
    main()


@main.command("admin-login")
@click.argument("email")
@click.option(
    "--role",
    type=click.Choice(["owner", "admin", "support", "finance", "read_only"]),
    default=None,
    help="Create the staff member with this role if missing (the very first one is an owner).",
)
def admin_login(email: str, role: str | None) -> None:
    """Print a one-time admin console login link for a staff member (15 minutes, single use)."""
    from datetime import timedelta

    from gateway.admin.staff import StaffService, login_url

    settings = load_settings()

    async def work(session: AsyncSession) -> tuple[str, str, bool]:
        staff = StaffService(
            session, SystemClock(), session_ttl=timedelta(seconds=settings.staff_session_ttl_seconds)
        )
        member = await staff.by_email(email)
        created = member is None
        if member is None:
            if role is None and await staff.count() > 0:
                raise click.ClickException(f"no staff member {email!r}; give --role to create one")
            member = await staff.add(email, role or "owner")
        return await staff.issue_login_link(member), member.role, created

    token, member_role, created = _run(work)
    if created:
        click.echo(f"Created staff member {email} ({member_role}).", err=True)
    click.echo(login_url(settings, token))
    click.echo("One-time link for the admin console; expires in 15 minutes.", err=True)
