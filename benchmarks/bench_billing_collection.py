"""The billing run with automatic collection on the sandbox provider (issue 10, "Benchmark"): N due
subscriptions renewed and invoiced, and each renewal invoice charged off-session on the customer's
default card through the sandbox, a separate process spoken to over HTTP. Same-run baseline: the same
billing run on the same seed without collection.

    .venv/bin/python benchmarks/bench_billing_collection.py [--subscriptions 10000]
        [--database-url URL] [--batch-size 200] [--concurrency 4]

Prints charges/s, the run time with and without collection (and their ratio), and the share of the
collecting run spent waiting on the provider: the time during which at least one `charge` call was in
flight (so concurrent calls are not counted twice), over the whole run.

How the run collects: `billing_run` renews and invoices every due subscription (one transaction per
batch) and, after each batch commits, its `after_batch` hook (payments' `billing_run_collection`, what
`tiergate worker` and `tiergate billing-run` pass) charges the `charge_automatically` invoices the batch
opened: claim in a transaction, `provider.charge` outside any transaction, apply in a new one,
`--concurrency` invoices at a time.

Seeding (not measured): benchmarks/bench_billing_run.py's seed (demo catalog, N copies of one
customer + basic_monthly subscription, all due), then for each customer a sandbox customer and a
`card_ok` method made over the sandbox's HTTP API, stored as Tiergate's `payment_methods` rows (what a
completed setup session leaves). THE DATABASE GIVEN IS EMPTIED: point it at a scratch PostgreSQL
database. Exits 1 unless every invoice is paid exactly once with exactly one charge at the provider.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from bench_billing_run import RUN_AT, seed
from sqlalchemy import func, select

from gateway.billing.models import Invoice
from gateway.billing.run import billing_run
from gateway.billing.wiring import BillingConfig
from gateway.customers.models import Customer
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.kernel.ids import new_id
from gateway.payments.collection import Collector, billing_run_collection
from gateway.payments.models import Payment, PaymentMethod, ProviderCustomer
from gateway.payments.port import ChargeRequest, ChargeResult
from gateway.payments.providers.registry import ProviderRegistry, register_kind
from gateway.payments.providers.sandbox import SandboxProvider
from gateway.payments.service import PaymentService, PaymentSettings
from gateway.security.secretbox import SecretBox

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/tg_collectbench"


# -- the provider, timed ---------------------------------------------------------------------------
class ProviderTimer:
    """Wall time during which at least one charge was in flight, and how many charges were made."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.busy_since = 0.0
        self.busy = 0.0
        self.charges = 0

    def enter(self) -> None:
        if self.in_flight == 0:
            self.busy_since = time.perf_counter()
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
        self.charges += 1
        if self.in_flight == 0:
            self.busy += time.perf_counter() - self.busy_since


TIMER = ProviderTimer()


class TimedSandbox(SandboxProvider):
    async def charge(self, request: ChargeRequest) -> ChargeResult:
        TIMER.enter()
        try:
            return await super().charge(request)
        finally:
            TIMER.leave()


# -- the sandbox, a process of its own ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sandbox() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [str(ROOT / ".venv/bin/tiergate"), "sandbox", "--port", str(port), "--store", ":memory:"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/v1/account", timeout=0.5).status_code < 500:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the sandbox did not start")


async def open_account(base: str) -> dict[str, str]:
    # Webhooks go to a closed port: this measures charging; webhook handling is the relay's business.
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            "/v1/accounts", json={"webhook_url": f"http://127.0.0.1:{free_port()}/hooks", "name": "bench"}
        )
        response.raise_for_status()
        account = response.json()
    return {"base_url": base, "api_key": account["api_key"], "webhook_secret": account["webhook_secret"]}


async def give_cards(db: Database, registry: ProviderRegistry, credentials: dict[str, str], n: int) -> str:
    """A provider account row, and per customer a sandbox customer with a card_ok method, stored as a
    completed setup session leaves them. Returns the account id."""
    async with db.unit_of_work() as session:
        account = await PaymentService(session, FrozenClock(RUN_AT), registry).create_account(
            kind="sandbox", name="bench", credentials=credentials, is_default=True
        )
        account_id = account.id
        tenants = list((await session.scalars(select(Customer.id))).all())
    assert len(tenants) == n
    headers = {"Authorization": f"Bearer {credentials['api_key']}"}
    limits = httpx.Limits(max_connections=16)
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=credentials["base_url"], headers=headers, limits=limits) as http:

        async def one(tenant: str) -> tuple[str, str, str]:
            async with gate:
                customer = (await http.post("/v1/customers", json={"name": tenant})).json()["id"]
                body = {"customer": customer, "test_method": "card_ok"}
                method = (await http.post("/v1/payment_methods", json=body)).json()["id"]
            return tenant, customer, method

        made = await asyncio.gather(*(one(t) for t in tenants))
    mappings, methods = [], []
    for tenant, customer, method in made:
        mappings.append(
            {
                "id": new_id("pcus"),
                "tenant_id": tenant,
                "account_id": account_id,
                "provider_customer_id": customer,
                "created_at": RUN_AT,
            }
        )
        methods.append(
            {
                "id": new_id("pm"),
                "tenant_id": tenant,
                "account_id": account_id,
                "provider_method_id": method,
                "type": "card",
                "brand": "visa",
                "last4": "4242",
                "exp_month": 12,
                "exp_year": 2030,
                "status": "active",
                "priority": 0,
                "created_at": RUN_AT,
                "updated_at": RUN_AT,
            }
        )
    async with db.engine.begin() as conn:
        for first in range(0, n, 5_000):
            await conn.execute(ProviderCustomer.__table__.insert(), mappings[first : first + 5_000])
            await conn.execute(PaymentMethod.__table__.insert(), methods[first : first + 5_000])
    return account_id


# -- the runs ---------------------------------------------------------------------------------------
@dataclass
class Run:
    seconds: float
    renewed: int
    charges: int = 0
    provider_seconds: float = 0.0


async def run_without(db: Database, batch_size: int) -> Run:
    started = time.perf_counter()
    result = await billing_run(db, FrozenClock(RUN_AT), BillingConfig(), batch_size=batch_size)
    return Run(time.perf_counter() - started, result.subscriptions)


async def run_with(db: Database, registry: ProviderRegistry, batch_size: int, concurrency: int) -> Run:
    clock = FrozenClock(RUN_AT)
    collector = Collector(db, clock, registry, BillingConfig(), PaymentSettings(), actor="system:billing_run")
    TIMER.__init__()  # type: ignore[misc]
    started = time.perf_counter()
    # The billing run collects each batch itself (after it commits, `concurrency` charges at a time).
    result = await billing_run(
        db,
        clock,
        BillingConfig(),
        batch_size=batch_size,
        after_batch=billing_run_collection(collector, concurrency=concurrency, limit=2 * batch_size),
    )
    seconds = time.perf_counter() - started
    return Run(seconds, result.subscriptions, TIMER.charges, TIMER.busy)


async def verify(db: Database, base: str, credentials: dict[str, str], n: int) -> list[str]:
    """Every renewal invoice paid by exactly one succeeded payment, no invoice attempted twice, and one
    charge at the sandbox per payment row. (The per-batch collection also charges any other invoice due a
    first attempt, e.g. one the seed left open: counted, not an error.)"""
    problems = []
    async with db.unit_of_work() as session:
        paid = await session.scalar(
            select(func.count())
            .select_from(Invoice)
            .where(Invoice.status == "paid", Invoice.billing_reason == "subscription_cycle")
        )
        cycle_payments = await session.scalar(
            select(func.count())
            .select_from(Payment)
            .join(Invoice, Invoice.id == Payment.invoice_id)
            .where(Payment.status == "succeeded", Invoice.billing_reason == "subscription_cycle")
        )
        attempts = await session.scalar(select(func.count()).select_from(Payment))
        twice = await session.scalar(
            select(func.count()).select_from(
                select(Payment.invoice_id).group_by(Payment.invoice_id).having(func.count() > 1).subquery()
            )
        )
    if (paid, cycle_payments, twice) != (n, n, 0):
        problems.append(
            f"paid renewal invoices {paid}, their succeeded payments {cycle_payments}, invoices attempted "
            f"more than once {twice}; want {n}, {n}, 0"
        )
    headers = {"Authorization": f"Bearer {credentials['api_key']}"}
    async with httpx.AsyncClient(base_url=base, headers=headers) as http:
        held = len((await http.get("/v1/payments")).json()["data"])
        if held != attempts:
            problems.append(f"the sandbox holds {held} payments for {attempts} payment rows")
    return problems


async def main_async(args: argparse.Namespace) -> int:
    db = Database(args.database_url)
    box = SecretBox(keys=(("k1", os.urandom(32)),))
    register_kind("sandbox", TimedSandbox)
    registry = ProviderRegistry(box, timeout_seconds=10.0)
    n = args.subscriptions
    process, base = start_sandbox()
    try:
        print(f"seeding {n} due subscriptions (baseline run) ...", flush=True)
        await seed(db, n)
        without = await run_without(db, args.batch_size)
        print(f"seeding {n} due subscriptions with cards on the sandbox ...", flush=True)
        await seed(db, n)
        credentials = await open_account(base)
        await give_cards(db, registry, credentials, n)
        with_ = await run_with(db, registry, args.batch_size, args.concurrency)
        problems = await verify(db, base, credentials, n)
    finally:
        process.terminate()
        process.wait(timeout=10)
        await db.dispose()

    share = with_.provider_seconds / with_.seconds if with_.seconds else 0.0
    rows = [
        ("subscriptions renewed (without / with)", f"{without.renewed} / {with_.renewed}"),
        ("billing run without collection", f"{without.seconds:.2f} s (baseline)"),
        ("billing run with collection", f"{with_.seconds:.2f} s"),
        ("ratio with / without", f"{with_.seconds / without.seconds:.2f}x"),
        ("charges", f"{with_.charges}"),
        ("charges/s over the collecting run", f"{with_.charges / with_.seconds:.1f}"),
        ("waiting on the provider", f"{with_.provider_seconds:.2f} s"),
        ("share of run time waiting on the provider", f"{share:.1%}"),
        ("collection concurrency", str(args.concurrency)),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    for problem in problems:
        print(f"FAILED: {problem}")
    return 1 if problems else 0


def main() -> int:
    # A terminated benchmark still stops its sandbox process (the `finally` in main_async).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--database-url", default=os.environ.get("TIERGATE_BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
