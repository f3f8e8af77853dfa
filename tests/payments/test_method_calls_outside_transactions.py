"""Setup sessions and detach call the provider with no database connection held by Tiergate (so no
transaction open): a provider double checks, at each call, how many pool connections are checked out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from gateway.payments.port import ProviderRejected, ProviderUnavailable
from gateway.payments.providers.registry import register_kind
from tests.payments.conftest import PayKit
from tests.payments.fakes import FakeProvider

HELD: dict[int, asyncio.Task[Any] | None] = {}  # DBAPI connections checked out now -> by which task
SEEN: list[tuple[str, int]] = []


def _checkout(dbapi_connection: Any, *_: Any) -> None:
    HELD[id(dbapi_connection)] = asyncio.current_task()


def _checkin(dbapi_connection: Any, *_: Any) -> None:
    HELD.pop(id(dbapi_connection), None)


def held_here() -> int:
    """Connections the calling task holds (the request handler's own; the app's background catch-up after
    a write runs in another task)."""
    me = asyncio.current_task()
    return sum(1 for task in HELD.values() if task is me)


class WatchingProvider(FakeProvider):
    """The fake provider, recording how many connections Tiergate holds at each call."""

    async def create_customer(self, **kw: Any) -> str:
        SEEN.append(("create_customer", held_here()))
        return await super().create_customer(**kw)

    async def create_setup_session(self, **kw: Any) -> Any:
        SEEN.append(("create_setup_session", held_here()))
        return await super().create_setup_session(**kw)

    async def detach_method(self, provider_method_id: str) -> None:
        SEEN.append(("detach_method", held_here()))

        await super().detach_method(provider_method_id)


@pytest.fixture
def watching(fake_provider: FakeProvider) -> Iterator[None]:
    register_kind("sandbox", WatchingProvider)
    event.listen(Pool, "checkout", _checkout)
    event.listen(Pool, "checkin", _checkin)
    SEEN.clear()
    HELD.clear()
    try:
        yield
    finally:
        event.remove(Pool, "checkout", _checkout)
        event.remove(Pool, "checkin", _checkin)
        register_kind("sandbox", FakeProvider)


async def test_setup_session_and_detach_reach_the_provider_with_no_transaction_open(
    kit: PayKit, watching: None
) -> None:
    customer = await kit.customer()
    method = await kit.method(customer)  # a setup session (creating the provider customer), a webhook
    session = await kit.api.post(
        f"/v1/customers/{customer}/setup_sessions", {"return_url": "https://app.example/back"}
    )
    assert session["url"].startswith("https://fake.example/setup/")
    detached = await kit.api.delete(f"/v1/customers/{customer}/payment_methods/{method}")
    assert (detached["id"], detached["status"]) == (method, "detached")
    again = await kit.api.delete(f"/v1/customers/{customer}/payment_methods/{method}")
    assert again["status"] == "detached"
    assert SEEN == [
        ("create_customer", 0),
        ("create_setup_session", 0),
        ("create_setup_session", 0),
        ("detach_method", 0),
    ]
    [row] = (
        await kit.api.get(f"/v1/customers/{customer}/payment_methods", params={"include_detached": True})
    )["data"]
    assert (row["id"], row["status"]) == (method, "detached")
    assert [e for e in kit.provider.world.methods.values() if e.get("detached")] == [
        {"customer": next(iter(kit.provider.world.customers.values())), "test": "card_ok", "detached": True}
    ]


class DownProvider(FakeProvider):
    """A provider that does not answer setup sessions and refuses to detach a method it does not know."""

    async def create_setup_session(self, **kw: Any) -> Any:
        raise ProviderUnavailable("sandbox POST /v1/setup_sessions: ConnectTimeout")

    async def detach_method(self, provider_method_id: str) -> None:
        raise ProviderRejected("No such payment method", code="payment_method_not_found")


async def test_a_provider_that_does_not_answer_is_a_503_and_a_refusal_a_409_and_nothing_changes(
    kit: PayKit, fake_provider: FakeProvider
) -> None:
    customer = await kit.customer()
    method = await kit.method(customer)
    register_kind("sandbox", DownProvider)
    try:
        down = await kit.api.post(
            f"/v1/customers/{customer}/setup_sessions", {"return_url": "https://app.example/back"}, expect=503
        )
        assert (down["code"], down["status"]) == ("provider_unavailable", 503)
        assert "ConnectTimeout" in down["detail"]
        refused = await kit.api.delete(f"/v1/customers/{customer}/payment_methods/{method}", expect=409)
        assert (refused["code"], refused["detail"]) == ("payment_method_not_found", "No such payment method")
    finally:
        register_kind("sandbox", FakeProvider)
    [row] = (await kit.api.get(f"/v1/customers/{customer}/payment_methods"))["data"]
    assert (row["id"], row["status"]) == (method, "active")
