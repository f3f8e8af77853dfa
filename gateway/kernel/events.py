"""Domain events: facts that a state change happened, written to the outbox in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """`type` is `noun.past_tense_verb` (`subscription.updated`, `invoice.paid`).

    `aggregate_id` orders delivery: events of one aggregate are delivered in the order they were written.
    `occurred_at` is the domain time (a test clock's time for customers on one), not the wall clock.
    """

    type: str
    aggregate_type: str
    aggregate_id: str
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    tenant_id: str | None = None
