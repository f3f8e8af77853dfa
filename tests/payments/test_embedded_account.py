"""The embedded default collects out of the box: `tiergate serve` with no configuration creates one
sandbox provider account on its own `/sandbox` mount at start, and a customer who saves a test card on the
sandbox's hosted page has an invoice paid at once, with webhooks from the sandbox back to Tiergate over
real HTTP. A restart does not create a second account."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.payments.test_sandbox_stories import eventually


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def served(settings: Settings, clock: FrozenClock, db: Database) -> AsyncIterator[Api]:
    # On the port the settings name: the account's base URL and webhook URL are the served address.
    app = create_app(settings, clock=clock, db=db)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    assert server.started
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}", timeout=30) as client:
            yield Api(client, ADMIN_KEY)  # type: ignore[arg-type]
    finally:
        server.should_exit = server.force_exit = True
        await task


async def test_the_embedded_sandbox_account_collects_out_of_the_box(clock: FrozenClock, db: Database) -> None:
    settings = Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        port=_port(),
        payments_embedded_account=True,
        payments_sandbox_store=":memory:",
        relay_interval_seconds=0.2,
    )
    async with served(settings, clock, db) as api:
        accounts = (await api.get("/v1/payment_provider_accounts"))["data"]
        assert [(a["kind"], a["name"], a["is_default"]) for a in accounts] == [
            ("sandbox", "Sandbox (embedded)", True)
        ]
        customer = (await api.post("/v1/customers", {"name": "Newcomer", "currency": "EUR"}))["id"]
        session = await api.post(
            f"/v1/customers/{customer}/setup_sessions", {"return_url": "https://shop.example/back"}
        )
        assert session["url"].startswith(f"http://127.0.0.1:{settings.port}/sandbox/setup/")
        async with httpx.AsyncClient() as browser:
            submitted = await browser.post(session["url"], data={"test_method": "card_ok"})
            assert submitted.status_code == 303

        async def methods() -> Any:
            return (await api.get(f"/v1/customers/{customer}/payment_methods"))["data"]

        [method] = await eventually(methods, lambda rows: len(rows) == 1)
        assert (method["type"], method["is_default"]) == ("card", True)
        await api.post(
            "/v1/invoice_items",
            {"customer": customer, "amount": 2_900, "currency": "EUR", "description": "Pro"},
        )
        invoice = await api.post("/v1/invoices", {"customer": customer, "auto_advance": True})
        paid = await eventually(
            lambda: api.get(f"/v1/invoices/{invoice['id']}"), lambda i: i["status"] == "paid"
        )
        assert (paid["amount_paid"], paid["amount_remaining"]) == (2_900, 0)

    # A restart finds the account and creates no second one.
    async with served(settings, clock, db) as api:
        accounts = (await api.get("/v1/payment_provider_accounts"))["data"]
        assert len(accounts) == 1
