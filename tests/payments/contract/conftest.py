"""The provider harnesses the contract suite runs over (see harness.py).

`HARNESSES` names every adapter the suite runs against. Stripe and Mollie replay recorded HTTP; the
sandbox joins as a served provider (its harness starts the real sandbox service).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.payments.contract.harness import Harness, MollieHarness, StripeHarness

HARNESSES: dict[str, Callable[[pytest.FixtureRequest], Harness]] = {
    "stripe": lambda request: StripeHarness(),
    "mollie": lambda request: MollieHarness(),
}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request: pytest.FixtureRequest) -> Harness:
    return HARNESSES[request.param](request)
