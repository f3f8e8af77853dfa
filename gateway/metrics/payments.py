"""Payment metrics for a window `[start, end)`, one currency, the wall clock's customers or one test clock's,
and a segment's invoices (`service.invoice_filter`: of its customers, and of its plan or interval when
the invoice was created):
how often invoices are paid at the first attempt and in the end, why payments fail, and how much.

Definitions (each a count of invoices or payments the API returns beside the rate, so a reader can check):
- **Invoices attempted**: invoices whose first payment attempt (`attempt = 1`) was made in the window.
- **First-attempt success rate** = those whose first attempt succeeded / invoices attempted.
- **Final success rate** = those with a succeeded attempt (any attempt, as known now: a retry after the
  window still counts for an invoice first tried in it) / invoices attempted. Invoices with no success yet
  and an attempt still unsettled (processing, unknown, requires_action) are counted as `pending`.
- **Declines**: failed attempts made in the window, by normalised decline code, with their amount
  (`failed_amount` is their sum: every failed attempt counts, so a card declined twice counts twice).
A rate is a decimal string (0.7500 = 75 %), null when nothing was attempted (undefined, never 0).
Recovery rate and recovered revenue belong to dunning (the next issue) and are not reported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.kernel.clock import ensure_utc
from gateway.metrics.domain import Windows, rate_text, ratio, window_of
from gateway.metrics.service import Scope, customer_filter, invoice_filter
from gateway.payments.domain import PaymentStatus
from gateway.payments.models import Payment

UNSETTLED = frozenset(
    {
        PaymentStatus.PROCESSING.value,
        PaymentStatus.UNKNOWN.value,
        PaymentStatus.REQUIRES_ACTION.value,
        PaymentStatus.REQUIRES_PAYMENT_METHOD.value,
    }
)
NO_CODE = "unspecified"  # a failed attempt whose provider gave no decline code


class PaymentMetrics:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @staticmethod
    def _in_scope(scope: Scope, payment: Any = Payment) -> list[ColumnElement[bool]]:
        clock = (
            payment.test_clock_id.is_(None)
            if scope.test_clock_id is None
            else payment.test_clock_id == scope.test_clock_id
        )
        return [
            payment.currency == scope.currency,
            clock,
            *customer_filter(payment.tenant_id, scope),
            *invoice_filter(payment.invoice_id, scope),
        ]

    async def invoice_outcomes(self, scope: Scope, windows: Windows) -> list[tuple[int, int, int, int]]:
        """Per window: (invoices attempted, first attempt succeeded, succeeded at any attempt, still
        pending)."""
        first = aliased(Payment)
        later = aliased(Payment)
        first_in_range = (
            select(first.invoice_id, first.status, first.created_at)
            .where(
                first.attempt == 1,
                first.invoice_id.is_not(None),
                first.created_at >= windows[0][0],
                first.created_at < windows[-1][1],
                *self._in_scope(scope, first),
            )
            .subquery()
        )
        statuses = (
            select(
                first_in_range.c.invoice_id,
                first_in_range.c.status,
                first_in_range.c.created_at,
                later.status,
            )
            .join(later, later.invoice_id == first_in_range.c.invoice_id)
            .order_by(first_in_range.c.invoice_id)
        )
        by_invoice: dict[str, tuple[datetime, str, set[str]]] = {}
        for invoice_id, first_status, at, status in (await self.session.execute(statuses)).all():
            by_invoice.setdefault(invoice_id, (ensure_utc(at), first_status, set()))[2].add(status)
        succeeded = PaymentStatus.SUCCEEDED.value
        counts = [[0, 0, 0, 0] for _ in windows]
        for at, first_status, seen in by_invoice.values():
            i = window_of(windows, at)
            if i is None:
                continue
            counts[i][0] += 1
            counts[i][1] += first_status == succeeded
            counts[i][2] += succeeded in seen
            counts[i][3] += succeeded not in seen and bool(seen & UNSETTLED)
        return [(a, b, c, d) for a, b, c, d in counts]

    async def declines(self, scope: Scope, windows: Windows) -> list[list[dict[str, Any]]]:
        """Per window, failed attempts made in it by decline code: most frequent first, then by code."""
        code = func.coalesce(Payment.decline_code, NO_CODE)
        query = select(Payment.created_at, code, Payment.amount).where(
            Payment.status == PaymentStatus.FAILED.value,
            Payment.created_at >= windows[0][0],
            Payment.created_at < windows[-1][1],
            *self._in_scope(scope),
        )
        tallies: list[dict[str, list[int]]] = [{} for _ in windows]
        for at, decline, amount in (await self.session.execute(query)).all():
            i = window_of(windows, ensure_utc(at))
            if i is not None:
                count_and_amount = tallies[i].setdefault(str(decline), [0, 0])
                count_and_amount[0] += 1
                count_and_amount[1] += int(amount)
        out = []
        for tally in tallies:
            rows = sorted(tally.items(), key=lambda kv: (-kv[1][0], kv[0]))
            out.append([{"decline_code": c, "count": n, "amount": amount} for c, (n, amount) in rows])
        return out

    async def attempts(self, scope: Scope, windows: Windows) -> list[int]:
        """Per window, the payment attempts made in it (one query: a count column per window)."""
        columns = [
            func.coalesce(
                func.sum(case((and_(Payment.created_at >= s, Payment.created_at < e), 1), else_=0)), 0
            )
            for s, e in windows
        ]
        row = (
            await self.session.execute(
                select(*columns).where(
                    Payment.created_at >= windows[0][0],
                    Payment.created_at < windows[-1][1],
                    *self._in_scope(scope),
                )
            )
        ).one()
        return [int(n) for n in row]

    async def summaries(self, scope: Scope, windows: Windows) -> list[dict[str, Any]]:
        """Each window's payment figures (`windows`: in time order, not overlapping; the admin dashboard
        asks for its months at once, `GET /v1/metrics` for one window: `summary`)."""
        if not windows:
            return []
        outcomes = await self.invoice_outcomes(scope, windows)
        declines = await self.declines(scope, windows)
        attempts = await self.attempts(scope, windows)
        out = []
        for (attempted, first_ok, final_ok, pending), failed, tried in zip(
            outcomes, declines, attempts, strict=True
        ):
            out.append(
                {
                    "invoices_attempted": attempted,
                    "first_attempt_succeeded": first_ok,
                    "succeeded": final_ok,
                    "pending": pending,
                    "first_attempt_success_rate": rate_text(ratio(first_ok, attempted)),
                    "final_success_rate": rate_text(ratio(final_ok, attempted)),
                    "attempts": tried,
                    "failed_attempts": sum(d["count"] for d in failed),
                    "failed_amount": sum(d["amount"] for d in failed),
                    "declines": failed,
                }
            )
        return out

    async def summary(self, scope: Scope, start: datetime, end: datetime) -> dict[str, Any]:
        return (await self.summaries(scope, [(start, end)]))[0]
