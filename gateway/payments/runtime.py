"""What the composition root builds once per process: the secret box, settings and billing config the
payment use cases need, and the hooks it registers (the `payments` outbox consumer, the test-clock hook,
the reconciliation job)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.payments.collection import Collector
from gateway.payments.domain import UNSETTLED, PaymentStatus
from gateway.payments.methods import MethodCalls
from gateway.payments.port import ProviderUnavailable
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.reconcile import ReconcileResult, reconcile_payments, reconcile_refunds, settle_payment
from gateway.payments.refunds import Refunds
from gateway.payments.repository import PaymentsRepository
from gateway.payments.service import PaymentSettings
from gateway.payments.webhooks import consumer_handler
from gateway.security.secretbox import SecretBox

log = logging.getLogger("tiergate.payments")

CONSUMER = "payments"


@dataclass
class PaymentsRuntime:
    db: Database
    clock: Clock
    box: SecretBox
    billing_config: BillingConfig = field(default_factory=BillingConfig)
    settings: PaymentSettings = field(default_factory=PaymentSettings)

    def registry(self) -> ProviderRegistry:
        return self.settings.registry(self.box)

    def collector(self, *, actor: str | None = None) -> Collector:
        return Collector(
            self.db, self.clock, self.registry(), self.billing_config, self.settings, actor=actor
        )

    def method_calls(self, *, actor: str | None = None) -> MethodCalls:
        return MethodCalls(
            self.db, self.clock, self.registry(), self.billing_config, self.settings, actor=actor
        )

    def refunds(self, *, actor: str | None = None) -> Refunds:
        return Refunds(self.db, self.clock, self.registry(), self.billing_config, self.settings, actor=actor)

    async def reconcile(self) -> ReconcileResult:
        return await reconcile_payments(
            self.db, self.clock, self.registry(), self.billing_config, self.settings
        )

    async def settle(self, payment_id: str, *, actor: str) -> None:
        """Ask the provider about one unsettled payment now (a customer back from 3-D Secure)."""
        await settle_payment(
            self.db,
            self.clock,
            self.registry(),
            self.billing_config,
            self.settings,
            payment_id,
            actor=actor,
            open_states=UNSETTLED | {PaymentStatus.REQUIRES_ACTION},
        )

    async def reconcile_refunds(self) -> ReconcileResult:
        return await reconcile_refunds(
            self.db, self.clock, self.registry(), self.billing_config, self.settings
        )

    def consumer(self) -> Callable[[AsyncSession, OutboxEvent], Awaitable[None]]:
        return consumer_handler(self.clock, self.registry(), self.billing_config, self.settings)

    def clock_hook(self) -> Callable[[AsyncSession, str, datetime], Awaitable[None]]:
        """Test clocks: each provider account holding a customer of the clock settles what falls due on
        it (the sandbox's asynchronous settlements, chargebacks, account-updater events)."""

        async def advance(session: AsyncSession, clock_id: str, to: datetime) -> None:
            repo = PaymentsRepository(session)
            registry = self.registry()
            for account_id in await repo.accounts_of_clock(clock_id):
                account = await repo.get_account(account_id)
                if account is None:
                    continue
                try:
                    await registry.provider(account).advance_clock(clock_id, to)
                except ProviderUnavailable:
                    log.warning("provider account %s did not advance clock %s", account_id, clock_id)

        return advance


async def run_reconciler(runtime: PaymentsRuntime, interval_seconds: float) -> None:
    """Beside the billing run: reconcile payments left processing / unknown, every interval."""
    while True:
        try:
            result = await runtime.reconcile()
            if result.looked_at:
                log.info("reconciliation: %d looked at, %d settled", result.looked_at, result.settled)
            refunds = await runtime.reconcile_refunds()
            if refunds.looked_at:
                log.info(
                    "refund reconciliation: %d looked at, %d settled", refunds.looked_at, refunds.settled
                )
        except asyncio.CancelledError:
            raise
        except Exception:  # the next pass retries
            log.exception("reconciliation pass failed")
        await asyncio.sleep(interval_seconds)
