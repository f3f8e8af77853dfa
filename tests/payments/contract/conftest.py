"""The provider harnesses the contract suite runs over (see harness.py).

`HARNESSES` names every adapter the suite runs against: Stripe and Mollie replay recorded HTTP; the
sandbox is served for real (sandbox_harness.py). A new provider is one more entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from tests.payments.contract.harness import Harness, MollieHarness, StripeHarness
from tests.payments.contract.sandbox_harness import sandbox_harness


def _plain(make: Callable[[], Harness]) -> Callable[[], AbstractAsyncContextManager[Harness]]:
    @asynccontextmanager
    async def started() -> AsyncIterator[Harness]:
        yield make()

    return started


HARNESSES: dict[str, Callable[[], AbstractAsyncContextManager[Harness]]] = {
    "stripe": _plain(StripeHarness),
    "mollie": _plain(MollieHarness),
    "sandbox": sandbox_harness,
}


@pytest.fixture(params=sorted(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    async with HARNESSES[request.param]() as started:
        yield started
