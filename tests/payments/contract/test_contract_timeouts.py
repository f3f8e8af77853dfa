"""The adapters' own timeout is real: pointed at a socket that accepts and never answers, a charge
raises ProviderUnavailable after `timeout_seconds` (no SDK retries pile up behind it). Recorded replays
raise the timeout themselves; this proves the adapters wire `timeout_seconds` into their HTTP clients."""

from __future__ import annotations

import asyncio
import importlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from gateway.payments.port import ChargeRequest, ProviderUnavailable
from gateway.payments.providers.mollie import MollieProvider
from gateway.payments.providers.stripe import StripeProvider

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


@dataclass
class SilentServer:
    url: str
    accepted: list[asyncio.StreamWriter] = field(default_factory=list)


@pytest.fixture
async def silent_server() -> AsyncIterator[SilentServer]:
    """A loopback server that accepts connections, reads, and never answers."""
    silent = SilentServer(url="")

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.accepted.append(writer)
        await reader.read(65536)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    silent.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield silent
    for writer in silent.accepted:
        writer.close()
    server.close()
    await server.wait_closed()


def charge_request(method: str, customer: str) -> ChargeRequest:
    return ChargeRequest(
        idempotency_key="invoice:in_timeout:attempt:1",
        provider_customer_id=customer,
        provider_method_id=method,
        amount=2000,
        currency="EUR",
        description="Invoice TG-2025-0001",
    )


async def test_stripe_gives_up_after_its_timeout(
    silent_server: SilentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the client reads its base address at construction; point it at the silent server
    monkeypatch.setattr(
        importlib.import_module("stripe._stripe_client"), "DEFAULT_API_BASE", silent_server.url
    )
    provider = StripeProvider(
        {"secret_key": "sk_test_timeout", "webhook_secret": "whsec_x"}, timeout_seconds=0.3
    )
    with pytest.raises(ProviderUnavailable):
        await provider.charge(charge_request("pm_1MqLiJLkdIwHu7ixUEgbFdYF", "cus_NffrFeUfNV2Hib"))
    assert len(silent_server.accepted) == 1  # the request reached the server: one try, no retries


async def test_mollie_gives_up_after_its_timeout(silent_server: SilentServer) -> None:
    provider = MollieProvider({"api_key": "test_timeouttimeouttimeout"}, timeout_seconds=0.3)
    provider._client.set_api_endpoint(silent_server.url)
    with pytest.raises(ProviderUnavailable):
        await provider.charge(charge_request("cst_8wmqcHMN4U:mdt_pWUnw6pkBN", "cst_8wmqcHMN4U"))
    assert len(silent_server.accepted) == 1


def test_nothing_listens_is_unavailable_too() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = MollieProvider({"api_key": "test_refusedrefusedrefused"}, timeout_seconds=0.3)
    provider._client.set_api_endpoint(f"http://127.0.0.1:{port}")
    with pytest.raises(ProviderUnavailable):
        asyncio.run(provider.charge(charge_request("cst_8wmqcHMN4U:mdt_pWUnw6pkBN", "cst_8wmqcHMN4U")))
