"""A subscriber on a test clock whose card can be told how the next charge goes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.provisioning.jobs import Wiring, tick
from tests.payments.conftest import PayKit


@dataclass
class Subscriber:
    kit: PayKit
    clock_id: str
    customer: str
    subscription: dict[str, Any]
    now: datetime

    async def advance(self, to: datetime) -> None:
        """Move the customer's test clock (renewals and dunning's due retries follow), then run what the
        background relay would: consumers, first attempts, due retries, their events."""
        self.now = to
        await self.kit.api.post(f"/v1/test_clocks/{self.clock_id}/advance", {"frozen_time": to.isoformat()})
        await self.settle()

    async def advance_by(self, **delta: float) -> None:
        await self.advance(self.now + timedelta(**delta))

    async def settle(self) -> None:
        for _ in range(3):
            await tick(self.kit.db, self.kit.clock, Wiring.from_settings(self.kit.settings))

    def card(self, outcome: str) -> None:
        """Every saved card of this customer answers `outcome` from now on (card_ok, card_lost, ...)."""
        pcus = self.kit.provider.world.customers[f"customer:{self.customer}:account:{self.kit.account}"]
        for method in self.kit.provider.world.methods.values():
            if method["customer"] == pcus:
                method["test"] = outcome

    async def status(self) -> str:
        return str((await self.kit.api.get(f"/v1/subscriptions/{self.subscription['id']}"))["status"])

    async def renewal_invoice(self) -> dict[str, Any]:
        invoices = (await self.kit.api.get("/v1/invoices", params={"subscription": self.subscription["id"]}))[
            "data"
        ]
        [renewal] = [i for i in invoices if i["billing_reason"] == "subscription_cycle"]
        return dict(renewal)

    async def payments(self, invoice: str) -> list[dict[str, Any]]:
        return list((await self.kit.api.get("/v1/payments", params={"invoice": invoice}))["data"])


START = datetime.fromisoformat("2027-01-05T00:00:00+00:00")


async def subscriber(
    kit: PayKit, name: str = "Dunned", price: str = "basic_monthly", email: str | None = None
) -> Subscriber:
    clock = await kit.api.post("/v1/test_clocks", {"frozen_time": START.isoformat()})
    body = {"name": name, "currency": "USD", "country": "US", "test_clock": clock["id"]}
    customer = await kit.api.post("/v1/customers", {**body, **({"email": email} if email else {})})
    await kit.method(customer["id"], "card_ok")
    sub = await kit.api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0}
    )
    who = Subscriber(kit, clock["id"], customer["id"], sub, START)
    await who.settle()  # the first invoice is paid
    assert await who.status() == "active"
    return who
