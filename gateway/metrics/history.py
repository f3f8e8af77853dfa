"""Many windows' ends in one pass over the MRR history, for the admin dashboard.

`MetricsService.mrr_by_customer` answers one instant with one query (each subscription's last change at
or before it). A dashboard of 24 months asks 25 instants, plus cohorts and reactivations: 24 windows
over 10,000 customers took 15 s that way (benchmarks/bench_dashboard.py). Here the scope's changes are
read once, in the order the service breaks ties in (`at`, then `seq`), and swept forward: at each
boundary, every subscription's value is the last change strictly before it, exactly what
`mrr_by_customer(…, before=True)` returns; a test compares every month with GET /v1/metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import ensure_utc
from gateway.metrics.models import MrrChange
from gateway.metrics.service import Scope, change_value, customer_filter


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state just before a boundary: each customer's MRR (zeros left out), and who ever had MRR."""

    mrr: dict[str, int]
    had_mrr: frozenset[str]


class MrrHistory:
    def __init__(self, changes: list[tuple[datetime, str, str, int]]) -> None:
        self.changes = changes  # (at, customer, subscription, MRR after the change), in (at, seq) order

    @classmethod
    async def load(cls, session: AsyncSession, scope: Scope) -> MrrHistory:
        clock = (
            MrrChange.test_clock_id.is_(None)
            if scope.test_clock_id is None
            else MrrChange.test_clock_id == scope.test_clock_id
        )
        query = (
            select(MrrChange.at, MrrChange.tenant_id, MrrChange.subscription_id, change_value(scope))
            .where(MrrChange.currency == scope.currency, clock, *customer_filter(MrrChange.tenant_id, scope))
            .order_by(MrrChange.at, MrrChange.seq)
        )
        rows = (await session.execute(query)).all()
        # The column is timezone-aware (UTC) on every backend; `ensure_utc` only for another zone, since
        # converting every one of tens of thousands of rows is most of this read's time.
        return cls([(at if at.tzinfo is UTC else ensure_utc(at), t, sub, int(v)) for at, t, sub, v in rows])

    def snapshots(self, boundaries: Sequence[datetime]) -> dict[datetime, Snapshot]:
        """A snapshot just before each boundary (changes at exactly a boundary belong after it)."""
        values: dict[str, int] = {}  # subscription → its MRR
        totals: dict[str, int] = {}  # customer → the sum of its subscriptions', kept as changes come
        had: set[str] = set()
        out: dict[datetime, Snapshot] = {}
        i = 0
        for boundary in sorted(set(boundaries)):
            while i < len(self.changes) and self.changes[i][0] < boundary:
                _, tenant, sub, value = self.changes[i]
                totals[tenant] = totals.get(tenant, 0) + value - values.get(sub, 0)
                values[sub] = value
                if value > 0:
                    had.add(tenant)
                i += 1
            out[boundary] = Snapshot({t: v for t, v in totals.items() if v}, frozenset(had))
        return out

    def first_paid(self) -> dict[str, datetime]:
        """When each customer first had MRR (its cohort), as `MetricsService.first_paid`."""
        first: dict[str, datetime] = {}
        for at, tenant, _, value in self.changes:
            if value > 0 and tenant not in first:
                first[tenant] = at
        return first
