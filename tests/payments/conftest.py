"""Payments fixtures: the in-process fake provider registered as the `sandbox` kind, a provider account,
and helpers to give a customer a method and an open invoice."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.payments.providers.registry import register_kind
from gateway.provisioning.jobs import Wiring, relay_once
from tests.conftest import Api
from tests.payments.fakes import WORLDS, FakeProvider, sign

CREDENTIALS = {"base_url": "http://fake.invalid/", "api_key": "fake-key", "webhook_secret": "whsec_fake"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The relay runs when the test says (`relay`), so what it applied is known at each step."""
    return dataclasses.replace(settings, relay_enabled=False)


@pytest.fixture
def fake_provider() -> Iterator[FakeProvider]:
    WORLDS.clear()
    register_kind("sandbox", FakeProvider)
    try:
        yield FakeProvider(CREDENTIALS, timeout_seconds=1)
    finally:
        register_kind("sandbox", None)
        WORLDS.clear()


@dataclasses.dataclass
class PayKit:
    api: Api
    db: Database
    clock: FrozenClock
    provider: FakeProvider
    account: str
    settings: Settings
    n: int = 0

    async def relay(self) -> int:
        return await relay_once(self.db, self.clock, Wiring.from_settings(self.settings))

    async def customer(self, name: str = "Acme", currency: str = "EUR") -> str:
        row = await self.api.post("/v1/customers", {"name": name, "currency": currency, "country": "NL"})
        return str(row["id"])

    async def webhook(self, payload: dict[str, Any], *, expect: int = 200, secret: str | None = None) -> Any:
        body = json.dumps(payload).encode()
        response = await self.api.client.post(
            f"/v1/payment_providers/{self.account}/webhooks",
            content=body,
            headers={"Sandbox-Signature": sign(secret or CREDENTIALS["webhook_secret"], body)},
        )
        assert response.status_code == expect, response.text
        return response.json()

    async def method(self, customer: str, test_method: str = "card_ok") -> str:
        """Save a method the way a customer does: a setup session, then the provider's webhook."""
        await self.api.post(
            f"/v1/customers/{customer}/setup_sessions", {"return_url": "https://app.example/back"}
        )
        pcus = self.provider.world.customers[f"customer:{customer}:account:{self.account}"]
        details = self.provider.add_method(pcus, test_method)
        self.n += 1
        await self.webhook(
            {
                "id": f"evt_attach_{self.n}",
                "type": "payment_method.attached",
                "customer": pcus,
                "method": {"id": details.provider_method_id},
            }
        )
        await self.relay()
        methods = await self.api.get(f"/v1/customers/{customer}/payment_methods")
        return str(
            next(
                m["id"]
                for m in methods["data"]
                if m["status"] == "active" and m["priority"] == len(methods["data"]) - 1
            )
        )

    async def open_invoice(
        self, customer: str, amount: int = 10_000, currency: str = "EUR"
    ) -> dict[str, Any]:
        await self.api.post(
            "/v1/invoice_items",
            {"customer": customer, "amount": amount, "currency": currency, "description": "Consulting"},
        )
        invoice: dict[str, Any] = await self.api.post(
            "/v1/invoices", {"customer": customer, "auto_advance": True}
        )
        assert invoice["status"] == "open"
        return invoice


@pytest.fixture
async def kit(
    api: Api, db: Database, clock: FrozenClock, settings: Settings, fake_provider: FakeProvider
) -> AsyncIterator[PayKit]:
    account = await api.post(
        "/v1/payment_provider_accounts",
        {"kind": "sandbox", "name": "Fake", "credentials": CREDENTIALS, "is_default": True},
    )
    yield PayKit(api, db, clock, fake_provider, account["id"], settings)
