"""`tiergate sandbox` as a process of its own, on a SQLite file: killed (-9) and started again, it still
has its charges (the same idempotency key finds the same payment) and what was due later on a clock."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx

from gateway.payments.port import ChargeRequest, ChargeStatus
from gateway.payments.providers.sandbox import SandboxProvider
from tests.conftest import START
from tests.served import _free_port


@asynccontextmanager
async def sandbox_process(store: Path, port: int) -> AsyncIterator[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "sandbox",
        "--port",
        str(port),
        "--store",
        str(store),
        env={**os.environ, "TIERGATE_LOG_LEVEL": "WARNING"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(200):
                try:
                    await client.get("/v1/account")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the sandbox process did not start")
        yield base
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)  # no clean shutdown: what is stored is what survives
        await process.wait()


async def test_a_killed_sandbox_process_keeps_its_charges(tmp_path: Path) -> None:
    store, port = tmp_path / "sandbox.sqlite3", _free_port()
    async with sandbox_process(store, port) as base, httpx.AsyncClient(base_url=base) as client:
        account = (await client.post("/v1/accounts", json={})).json()
        credentials = {
            "base_url": base,
            "api_key": account["api_key"],
            "webhook_secret": account["webhook_secret"],
        }
        provider = SandboxProvider(credentials, timeout_seconds=5)
        customer = await provider.create_customer(
            customer_id="cus_1", name="Acme", email=None, idempotency_key="customer:cus_1"
        )
        auth = {"Authorization": f"Bearer {account['api_key']}"}
        methods = {}
        for name in ("card_ok", "sepa_ok"):
            body = {"customer": customer, "test_method": name, "clock_ref": "clk", "at": START.isoformat()}
            methods[name] = (await client.post("/v1/payment_methods", json=body, headers=auth)).json()["id"]

        def charge(name: str) -> ChargeRequest:
            return ChargeRequest(
                idempotency_key=f"invoice:{name}:attempt:1",
                provider_customer_id=customer,
                provider_method_id=methods[name],
                amount=1500,
                currency="EUR",
                description="x",
                at=START,
                clock_ref="clk",
            )

        card = await provider.charge(charge("card_ok"))
        sepa = await provider.charge(charge("sepa_ok"))
        assert (card.status, sepa.status) == (ChargeStatus.SUCCEEDED, ChargeStatus.PROCESSING)

    async with sandbox_process(store, port):
        assert await provider.charge(charge("card_ok")) == card  # the same key: the same one charge
        await provider.advance_clock("clk", START + timedelta(days=2))
        settled = await provider.retrieve_payment(sepa.provider_payment_id)
        assert (settled.status, settled.version) == (ChargeStatus.SUCCEEDED, 2)
        async with httpx.AsyncClient(base_url=base) as client:
            listed = (await client.get("/v1/payments", params={"customer": customer}, headers=auth)).json()
        assert sorted(p["id"] for p in listed["data"]) == sorted(
            [card.provider_payment_id, sepa.provider_payment_id]
        )
