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

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from gateway.metrics.domain import rate_text, ratio
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

    async def invoice_outcomes(
        self, scope: Scope, start: datetime, end: datetime
    ) -> tuple[int, int, int, int]:
        """(invoices attempted, first attempt succeeded, succeeded at any attempt, still pending)."""
        first = aliased(Payment)
        later = aliased(Payment)
        first_in_window = (
            select(first.invoice_id, first.status)
            .where(
                first.attempt == 1,
                first.invoice_id.is_not(None),
                first.created_at >= start,
                first.created_at < end,
                *self._in_scope(scope, first),
            )
            .subquery()
        )
        statuses = (
            select(first_in_window.c.invoice_id, first_in_window.c.status, later.status)
            .join(later, later.invoice_id == first_in_window.c.invoice_id)
            .order_by(first_in_window.c.invoice_id)
        )
        by_invoice: dict[str, tuple[str, set[str]]] = {}
        for invoice_id, first_status, status in (await self.session.execute(statuses)).all():
            by_invoice.setdefault(invoice_id, (first_status, set()))[1].add(status)
        attempted = len(by_invoice)
        succeeded = PaymentStatus.SUCCEEDED.value
        first_ok = sum(1 for first_status, _ in by_invoice.values() if first_status == succeeded)
        final_ok = sum(1 for _, seen in by_invoice.values() if succeeded in seen)
        pending = sum(1 for _, seen in by_invoice.values() if succeeded not in seen and seen & UNSETTLED)
        return attempted, first_ok, final_ok, pending

    async def declines(self, scope: Scope, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Failed attempts made in the window by decline code: most frequent first, then by code."""
        code = func.coalesce(Payment.decline_code, NO_CODE)
        query = (
            select(code, func.count(), func.coalesce(func.sum(Payment.amount), 0))
            .where(
                Payment.status == PaymentStatus.FAILED.value,
                Payment.created_at >= start,
                Payment.created_at < end,
                *self._in_scope(scope),
            )
            .group_by(code)
        )
        rows = [(str(c), int(n), int(amount)) for c, n, amount in (await self.session.execute(query)).all()]
        rows.sort(key=lambda r: (-r[1], r[0]))
        return [{"decline_code": c, "count": n, "amount": amount} for c, n, amount in rows]

    async def attempts(self, scope: Scope, start: datetime, end: datetime) -> int:
        query = select(func.count()).where(
            Payment.created_at >= start, Payment.created_at < end, *self._in_scope(scope)
        )
        return int(await self.session.scalar(query) or 0)

    async def summary(self, scope: Scope, start: datetime, end: datetime) -> dict[str, Any]:
        attempted, first_ok, final_ok, pending = await self.invoice_outcomes(scope, start, end)
        declines = await self.declines(scope, start, end)
        return {
            "invoices_attempted": attempted,
            "first_attempt_succeeded": first_ok,
            "succeeded": final_ok,
            "pending": pending,
            "first_attempt_success_rate": rate_text(ratio(first_ok, attempted)),
            "final_success_rate": rate_text(ratio(final_ok, attempted)),
            "attempts": await self.attempts(scope, start, end),
            "failed_attempts": sum(d["count"] for d in declines),
            "failed_amount": sum(d["amount"] for d in declines),
            "declines": declines,
        }
