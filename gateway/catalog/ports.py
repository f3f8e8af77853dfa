"""What the catalog asks of the subscriptions domain, which sits above it.

Subscriptions import the catalog, never the other way round (ARCHITECTURE, import direction). Where a
catalog read needs an answer only subscriptions have (how many subscribers a plan version has), it
declares the question here and the composition root hands in an implementation
(`gateway.subscriptions.migrations.SubscriberCounts`).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


# runtime_checkable: Litestar validates dependency values, and this is one.
@runtime_checkable
class VersionSubscribers(Protocol):
    async def live_by_version(self, plan_id: str) -> dict[str, int]:
        """Live (not ended) subscriptions of the plan per plan version id; versions without any are
        absent. One grouped query."""
        ...
