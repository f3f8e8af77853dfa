"""Charges per second through the sandbox adapter against the sandbox served over HTTP (uvicorn on
loopback, one process, SQLite file store), with the same run's baseline: an authenticated read of the
account (`GET /v1/account`: the same auth, framework and server, no write, no idempotency record).

    .venv/bin/python benchmarks/bench_sandbox_charges.py [--charges 1000] [--concurrency 16]

Each charge is a real one: an idempotency key, a payment row, its event, its webhook delivery attempt
(to a dead port: the attempt fails fast and is scheduled again, as when a merchant is down).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
from pathlib import Path

import httpx
import uvicorn

from gateway.payments.port import ChargeRequest
from gateway.payments.providers.sandbox import SandboxProvider
from gateway.sandbox import SandboxConfig, create_sandbox_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def timed(count: int, concurrency: int, one: object) -> float:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await one(i)  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def main(charges: int, concurrency: int) -> None:
    store = Path(tempfile.mkdtemp()) / "sandbox.sqlite3"
    app = create_sandbox_app(str(store), config=SandboxConfig(webhook_max_attempts=2))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started:
            break
        await asyncio.sleep(0.025)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        account = (await client.post("/v1/accounts", json={"webhook_url": "http://127.0.0.1:9/x"})).json()
        auth = {"Authorization": f"Bearer {account['api_key']}"}
        customer = (await client.post("/v1/customers", json={"name": "Bench"}, headers=auth)).json()["id"]
        body = {"customer": customer, "test_method": "card_ok"}
        method = (await client.post("/v1/payment_methods", json=body, headers=auth)).json()["id"]

        async def read(_: int) -> None:
            response = await client.get("/v1/account", headers=auth)
            assert response.status_code == 200

        baseline = await timed(charges, concurrency, read)

    provider = SandboxProvider({"base_url": base, "api_key": account["api_key"], "webhook_secret": ""})

    async def charge(i: int) -> None:
        await provider.charge(
            ChargeRequest(f"invoice:bench:attempt:{i}", customer, method, 1000, "EUR", "bench")
        )

    charged = await timed(charges, concurrency, charge)
    await provider.aclose()
    server.should_exit = True
    await task

    print(f"sandbox over HTTP, {charges} calls, concurrency {concurrency} (same run)")
    print(f"{'what':<44}{'calls/s':>10}{'ratio':>8}")
    print(f"{'GET /v1/account (baseline, shared client)':<44}{charges / baseline:>10.0f}{1.0:>8.2f}")
    print(f"{'adapter charge (keep-alive client)':<44}{charges / charged:>10.0f}{baseline / charged:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--charges", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.charges, args.concurrency))
