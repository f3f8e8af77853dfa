"""Issue 10, crash safety: Tiergate is SIGKILLed between the provider call and the commit of its answer.

The sandbox runs as its own process (`tiergate sandbox`), Tiergate as a real `tiergate serve` process on
PostgreSQL. A `card_timeout` charge is stored by the sandbox at once and answered only 30 s later, so
while Tiergate waits for that answer the charge exists at the provider and Tiergate has committed only
its `processing` payment. Tiergate is killed right then, restarted, and its reconciler (the only way
back: the sandbox sends no webhooks to it any more) settles the payment by re-sending the same charge
under the same idempotency key. Afterwards: one charge at the provider, the invoice paid once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from gateway.db.session import Database
from tests.conftest import ADMIN_KEY, IN_CI, POSTGRES_URL
from tests.metering.test_kill9 import _free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL and not IN_CI, reason="needs PostgreSQL (always in CI)"),
]

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
AMOUNT = 4_242


class Process:
    """A `tiergate …` subprocess on a fixed port (restarted on the same one), up once `ready` answers."""

    def __init__(self, args: list[str], env: dict[str, str], ready: str) -> None:
        self.port = _free_port()
        self.args, self.env, self.ready = args, env, ready
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            *self.args,
            "--port",
            str(self.port),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the server's workers die with it
        )
        async with httpx.AsyncClient() as client:
            for _ in range(3600):  # up to 3 minutes: the machine may be loaded
                try:
                    await client.get(self.url + self.ready)
                    return
                except httpx.TransportError:
                    pass
                assert self.process.returncode is None, f"{self.args[0]} exited"
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.args[0]} did not come up")

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGKILL)  # kill -9 of every process of the service
            await self.process.wait()


@pytest.fixture
async def processes(postgres_db: Database) -> AsyncIterator[tuple[Process, Process]]:
    sandbox = Process(
        ["sandbox", "--store", ":memory:"], {**os.environ, "TIERGATE_LOG_LEVEL": "WARNING"}, "/"
    )
    tiergate = Process(
        ["serve"],
        {
            **os.environ,
            "TIERGATE_DATABASE_URL": POSTGRES_URL,
            "TIERGATE_REDIS_URL": "",
            "TIERGATE_BOOTSTRAP_API_KEY": ADMIN_KEY,
            "TIERGATE_MIGRATE_ON_START": "false",
            # The scheduler runs the reconciler; the relay applies the webhook that brings the method.
            "TIERGATE_SCHEDULER_ENABLED": "true",
            "TIERGATE_RELAY_ENABLED": "true",
            "TIERGATE_RELAY_INTERVAL_SECONDS": "0.2",
            # Tiergate would wait longer than the sandbox's late answer (30 s): it is killed while waiting.
            "TIERGATE_PAYMENT_PROVIDER_TIMEOUT_SECONDS": "60",
            # A payment is left to reconciliation this long after its claim (stored on the row): longer
            # than the moments between the claim and the kill, or the live process would settle it itself.
            "TIERGATE_PAYMENT_RECONCILE_AFTER_SECONDS": "15",
            "TIERGATE_PAYMENT_RECONCILE_INTERVAL_SECONDS": "0.5",
            "TIERGATE_PAYMENTS_SANDBOX_MOUNT": "false",
            "TIERGATE_LOG_LEVEL": "WARNING",
        },
        "/health/live",
    )
    try:
        await sandbox.start()
        await tiergate.start()
        yield sandbox, tiergate
    finally:
        await tiergate.kill()
        await sandbox.kill()


async def eventually(
    read: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], seconds: float = 60.0
) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = await read()
        if ok(value):
            return value
        assert asyncio.get_running_loop().time() < deadline, f"never true: {value}"
        await asyncio.sleep(0.1)


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_kill_9_between_the_charge_and_its_commit_then_reconciliation_charges_once(
    processes: tuple[Process, Process],
) -> None:
    sandbox, tiergate = processes
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=10) as anonymous:
        opened = await _ok(
            await anonymous.post("/v1/accounts", json={"name": "Tiergate", "webhook_url": None}), 201
        )
    at_provider = httpx.AsyncClient(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {opened['api_key']}"}, timeout=10
    )
    api = httpx.AsyncClient(base_url=tiergate.url, headers=HEADERS, timeout=10)
    async with at_provider, api:
        credentials = {
            "base_url": sandbox.url,
            "api_key": opened["api_key"],
            "webhook_secret": opened["webhook_secret"],
        }
        account = await _ok(
            await api.post(
                "/v1/payment_provider_accounts",
                json={"kind": "sandbox", "name": "Sandbox", "credentials": credentials, "is_default": True},
            ),
            201,
        )
        webhooks = f"{tiergate.url}/v1/payment_providers/{account['id']}/webhooks"
        await _ok(await at_provider.patch("/v1/account", json={"webhook_url": webhooks}))
        customer = (
            await _ok(
                await api.post("/v1/customers", json={"name": "Acme", "currency": "EUR", "country": "NL"}),
                201,
            )
        )["id"]
        # The customer saves a `card_timeout` method on the sandbox's page; it arrives by webhook.
        setup = await _ok(
            await api.post(
                f"/v1/customers/{customer}/setup_sessions", json={"return_url": "https://shop.example/"}
            ),
            201,
        )
        async with httpx.AsyncClient() as browser:
            submitted = await browser.post(setup["url"], data={"test_method": "card_timeout"})
            assert submitted.status_code == 303, submitted.text

        async def methods() -> list[dict[str, Any]]:
            return list((await _ok(await api.get(f"/v1/customers/{customer}/payment_methods")))["data"])

        await eventually(methods, lambda rows: len(rows) == 1)
        # From now on nothing reaches Tiergate from the provider: reconciliation is the only way back.
        await _ok(await at_provider.patch("/v1/account", json={"webhook_url": None}))

        await _ok(
            await api.post(
                "/v1/invoice_items",
                json={"customer": customer, "amount": AMOUNT, "currency": "EUR", "description": "Plan"},
            ),
            201,
        )
        invoice = await _ok(
            await api.post("/v1/invoices", json={"customer": customer, "auto_advance": False}), 201
        )
        await _ok(await api.post(f"/v1/invoices/{invoice['id']}/finalize"))

        async def charges() -> list[dict[str, Any]]:
            return list((await _ok(await at_provider.get("/v1/payments")))["data"])

        # The charge is in flight: the sandbox stores it, then holds its answer back for 30 s.
        pay = asyncio.create_task(api.post(f"/v1/invoices/{invoice['id']}/pay", json={}, timeout=120))
        [charge] = await eventually(charges, lambda rows: len(rows) == 1)
        assert (charge["amount"], charge["status"]) == (AMOUNT, "succeeded")
        [pending] = (await _ok(await api.get("/v1/payments", params={"invoice": invoice["id"]})))["data"]
        assert pending["status"] == "processing"  # Tiergate has not committed the provider's answer

        await tiergate.kill()
        with pytest.raises(httpx.TransportError):
            await pay  # the caller never heard back
        await tiergate.start()

        async def invoice_now() -> dict[str, Any]:
            return dict(await _ok(await api.get(f"/v1/invoices/{invoice['id']}")))

        paid = await eventually(invoice_now, lambda row: row["status"] == "paid")
        assert (paid["amount_paid"], paid["amount_remaining"], paid["total"]) == (AMOUNT, 0, AMOUNT)
        payments = (await _ok(await api.get("/v1/payments", params={"invoice": invoice["id"]})))["data"]
        assert [(p["status"], p["amount"], p["attempt"]) for p in payments] == [("succeeded", AMOUNT, 1)]
        assert [(c["id"], c["amount"]) for c in await charges()] == [(charge["id"], AMOUNT)]
