"""Dunning's metrics for a window `[start, end)`, one currency, the wall clock's customers or one test
clock's, and a segment's runs (by their invoice, as payments are: `service.invoice_filter`)
(`/v1/metrics` → `dunning`):

- **Runs started**: invoices whose dunning started in the window (a failed renewal's first failure).
- **Recovered / exhausted / stopped / active**: where those runs stand now.
- **Recovery rate** = recovered / (recovered + exhausted): of the runs that came to an end by payment or
  by running out, the share that was paid (stopped runs, by a void or a cancellation, are left out;
  still-active ones are not decided yet). Null when none ended.
- **Recovered revenue**: what runs recovered in the window brought in (by their recovery date).
- **Time to recover**: seconds from the first failure to the payment, median and mean, over the runs
  recovered in the window.
- **Involuntary churn**: MRR lost to exhausted dunning in the window (the final action `cancel`, `unpaid`
  or `pause`): each such customer's MRR just before the run ran out (in a segment, its MRR there). Voluntary
  churn is the window's churn movement minus that (customers who left on their own).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.dunning.domain import FinalAction, RunStatus
from gateway.dunning.models import DunningRun
from gateway.kernel.clock import ensure_utc
from gateway.metrics.domain import Windows, rate_text, ratio, window_of
from gateway.metrics.service import MetricsService, Scope, customer_filter, invoice_filter

CHURNING_ACTIONS = frozenset({FinalAction.CANCEL.value, FinalAction.UNPAID.value, FinalAction.PAUSE.value})


class DunningMetrics:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _in_scope(scope: Scope) -> list[ColumnElement[bool]]:
        clock = (
            DunningRun.test_clock_id.is_(None)
            if scope.test_clock_id is None
            else DunningRun.test_clock_id == scope.test_clock_id
        )
        return [
            DunningRun.currency == scope.currency,
            clock,
            *customer_filter(DunningRun.tenant_id, scope),
            *invoice_filter(DunningRun.invoice_id, scope),
        ]

    async def summaries(
        self, scope: Scope, windows: Windows, churned_mrr: Sequence[int]
    ) -> list[dict[str, Any]]:
        """Each window's dunning figures (`windows`: in time order, not overlapping), read in two queries
        for all of them; `churned_mrr`: each window's churn movement (voluntary churn is the rest of it)."""
        if not windows:
            return []
        lo, hi = windows[0][0], windows[-1][1]
        started_by: list[list[DunningRun]] = [[] for _ in windows]
        started = await self.session.scalars(
            select(DunningRun).where(
                *self._in_scope(scope), DunningRun.started_at >= lo, DunningRun.started_at < hi
            )
        )
        for run in started.all():
            i = window_of(windows, ensure_utc(run.started_at))
            if i is not None:
                started_by[i].append(run)
        ended_by: list[list[DunningRun]] = [[] for _ in windows]
        ended = await self.session.scalars(
            select(DunningRun).where(
                *self._in_scope(scope),
                DunningRun.ended_at.is_not(None),
                DunningRun.ended_at >= lo,
                DunningRun.ended_at < hi,
            )
        )
        for run in ended.all():
            assert run.ended_at is not None
            i = window_of(windows, ensure_utc(run.ended_at))
            if i is not None:
                ended_by[i].append(run)
        return [
            await self._window(scope, runs, done, churned)
            for runs, done, churned in zip(started_by, ended_by, churned_mrr, strict=True)
        ]

    async def summary(self, scope: Scope, start: datetime, end: datetime, churned_mrr: int) -> dict[str, Any]:
        return (await self.summaries(scope, [(start, end)], [churned_mrr]))[0]

    async def _window(
        self, scope: Scope, started: list[DunningRun], ended: list[DunningRun], churned_mrr: int
    ) -> dict[str, Any]:
        by_status = {s.value: sum(1 for r in started if r.status == s.value) for s in RunStatus}
        recovered = [r for r in ended if r.status == RunStatus.RECOVERED.value]
        seconds = [int((r.ended_at - r.started_at).total_seconds()) for r in recovered if r.ended_at]
        lost = 0
        lost_customers: set[str] = set()
        metrics = MetricsService(self.session)
        for run in ended:
            if run.status != RunStatus.EXHAUSTED.value or run.final_action not in CHURNING_ACTIONS:
                continue
            assert run.ended_at is not None
            if run.tenant_id in lost_customers:
                continue
            before = await metrics.mrr_by_customer(scope, run.ended_at, before=True)
            lost += before.get(run.tenant_id, 0)
            lost_customers.add(run.tenant_id)
        decided = by_status[RunStatus.RECOVERED.value] + by_status[RunStatus.EXHAUSTED.value]
        return {
            "runs_started": len(started),
            **by_status,
            "recovery_rate": rate_text(ratio(by_status[RunStatus.RECOVERED.value], decided)),
            "recovered_revenue": sum(r.recovered_amount for r in recovered),
            "recovered_in_window": len(recovered),
            "time_to_recover_seconds": {
                "median": int(statistics.median(seconds)) if seconds else None,
                "mean": int(statistics.fmean(seconds)) if seconds else None,
            },
            "involuntary_churn": {"customers": len(lost_customers), "mrr": lost},
            "voluntary_churn": {"mrr": max(0, churned_mrr - lost)},
        }
