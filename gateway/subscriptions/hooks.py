"""How other domains follow subscription changes inside the same transaction.

Billing sits above subscriptions (it imports them), so the subscription service cannot call it. Instead
the composition root hands the service a list of listeners; each event the service writes to the outbox
is also passed to every listener before the unit of work commits. A listener that raises refuses the
change: the renewal and its invoice commit together or not at all, which is what makes "one invoice per
period" hold across crashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from gateway.subscriptions.models import Subscription


# runtime_checkable: Litestar validates dependency values, and a list of listeners is one.
@runtime_checkable
class SubscriptionListener(Protocol):
    async def on_event(
        self, sub: Subscription, event_type: str, at: datetime, data: dict[str, Any]
    ) -> None: ...

    # A batch of due subscriptions (the billing run) is about to move: load what they will need at once.
    async def before_batch(self, subs: Sequence[Subscription]) -> None: ...

    # The batch has moved; finish what was deferred (numbering, finalisation) before it commits.
    async def after_batch(self) -> None: ...


@runtime_checkable
class ClockListener(Protocol):
    """A listener that also follows test clocks: after an advance has applied every subscription step,
    it does what fell due on the clock's other objects (billing: overdue invoices)."""

    async def on_clock_advanced(self, test_clock_id: str, to: datetime) -> int: ...
