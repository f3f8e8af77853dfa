"""What subscriptions (and billing) ask of the payments domain, which sits above them.

Payments imports billing and subscriptions, never the other way round (ARCHITECTURE, import direction).
Where a lower layer needs an answer only payments has, it declares the question here and the
composition root hands in an implementation (`gateway.payments` provides the real one).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


# runtime_checkable: Litestar validates dependency values, and this is one.
@runtime_checkable
class PaymentMethodLookup(Protocol):
    async def has_usable_default(self, tenant_id: str) -> bool:
        """Whether the customer has a default payment method that can be charged now (active, not
        expired). Trial ends ask it (billing-rules rule 17)."""
        ...


class NoPaymentMethods:
    """The answer when no payments domain is wired: nobody has a method (rule 17's "missing payment
    method" branch applies to every charge_automatically trial end)."""

    async def has_usable_default(self, tenant_id: str) -> bool:
        return False


NO_PAYMENT_METHODS = NoPaymentMethods()
