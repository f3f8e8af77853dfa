"""The sandbox served for real over HTTP (uvicorn on a loopback port, in the test's loop), a webhook
receiver served the same way, and an account on the sandbox whose webhooks go to that receiver.

Used by tests/sandbox/ and tests/payments/providers/ (the adapter's tests): import the fixtures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest

from gateway.kernel.clock import FrozenClock
from gateway.payments.providers.sandbox import SandboxProvider
from gateway.sandbox import SandboxConfig, create_sandbox_app
from tests.conftest import START
from tests.served import serving

# Short delays so a test waits fractions of a second, never the production defaults.
FAST = SandboxConfig(
    async_card_delay=timedelta(seconds=10),
    late_answer_seconds=1.5,
    webhook_backoff_seconds=0.05,
    webhook_max_backoff_seconds=0.2,
    webhook_timeout_seconds=2.0,
    tick_seconds=0.05,
)


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app until the block ends; yields its base URL."""
    async with serving(app) as api:
        yield str(api.client.base_url).rstrip("/")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A merchant's webhook endpoint: records what arrives; answers 503 to the first `fail_first`."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_first: int = 0
    refused: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def asgi(self) -> Callable[[Any, Any, Any], Awaitable[None]]:
        # A plain coroutine function: uvicorn takes a bound method for an ASGI 2 app.
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await self.handle(scope, receive, send)

        return app

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status, text = 200, b"ok"
        if scope["path"].startswith("/webhooks"):
            if self.refused < self.fail_first:
                self.refused += 1
                status = 503
            else:
                self.received.append(Received(scope["path"], headers, body))
                self.arrived.set()
        else:  # a return_url page the customer lands on
            text = b'<!doctype html><html lang="en"><head><title>Back at the shop</title></head>' + (
                b"<body><main><h1>Back at the shop</h1></main></body></html>"
            )
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"text/html" if status == 200 else b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": text})

    async def wait_for(self, count: int, seconds: float = 10.0) -> list[Received]:
        """At least `count` webhooks received, or fail."""

        async def enough() -> None:
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), seconds)
        return self.received

    def types(self) -> list[str]:
        import json

        return [json.loads(r.body)["type"] for r in self.received]


@dataclass
class Sandbox:
    """A served sandbox, an account on it and the adapter built from that account's credentials."""

    base_url: str
    clock: FrozenClock
    credentials: dict[str, str]
    provider: SandboxProvider
    receiver: Receiver
    http: httpx.AsyncClient  # speaks to the sandbox as the account (for calls the port has no use for)

    async def customer(self, name: str = "Acme") -> str:
        return await self.provider.create_customer(
            customer_id=f"cus_{name}", name=name, email=None, idempotency_key=f"customer:{name}:{id(self)}"
        )

    async def method(self, customer: str, test_method: str, **timing: Any) -> str:
        body: dict[str, Any] = {"customer": customer, "test_method": test_method, **timing}
        response = await self.http.post("/v1/payment_methods", json=body)
        assert response.status_code == 201, response.text
        method_id: str = response.json()["id"]
        return method_id

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def payments_of(self, customer: str) -> list[dict[str, Any]]:
        payments: list[dict[str, Any]] = (await self.get("/v1/payments", customer=customer))["data"]
        return payments


async def open_account(base_url: str, webhook_url: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.post("/v1/accounts", json={"webhook_url": webhook_url, "name": "Tiergate"})
        assert response.status_code == 201, response.text
        account = response.json()
    return {"base_url": base_url, "api_key": account["api_key"], "webhook_secret": account["webhook_secret"]}


@asynccontextmanager
async def sandbox_on(
    app_factory: Callable[[FrozenClock], Any], *, timeout_seconds: float = 5.0
) -> AsyncIterator[Sandbox]:
    clock = FrozenClock(START)
    receiver = Receiver()
    async with served(receiver.asgi) as receiver_url, served(app_factory(clock)) as base_url:
        receiver.url = receiver_url
        credentials = await open_account(base_url, f"{receiver_url}/webhooks/sandbox")
        headers = {"Authorization": f"Bearer {credentials['api_key']}"}
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=10) as http:
            yield Sandbox(
                base_url,
                clock,
                credentials,
                SandboxProvider(credentials, timeout_seconds=timeout_seconds),
                receiver,
                http,
            )


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    """A sandbox served on its own (in memory, fast delays, its wall clock frozen at START)."""
    async with sandbox_on(lambda clock: create_sandbox_app(":memory:", clock=clock, config=FAST)) as sb:
        yield sb
