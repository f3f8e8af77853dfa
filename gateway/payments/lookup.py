"""The payments domain's answer to `subscriptions.ports.PaymentMethodLookup`: whether a customer has a
default method that can be charged now. Subscriptions ask it at trial end (billing-rules rule 17)
without importing payments; the composition root hands it in through `BillingConfig`."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig
from gateway.config import Settings
from gateway.payments.domain import MethodStatus
from gateway.payments.models import PaymentMethod


class StoredPaymentMethods:
    """Answers from `payment_methods`: an active method is the default or a fallback behind it (the
    lowest priority active method is the default), so any active one means a usable default."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def has_usable_default(self, tenant_id: str) -> bool:
        query = (
            select(PaymentMethod.id)
            .where(PaymentMethod.tenant_id == tenant_id, PaymentMethod.status == MethodStatus.ACTIVE.value)
            .limit(1)
        )
        return (await self.session.scalars(query)).first() is not None


def with_payment_methods(config: BillingConfig) -> BillingConfig:
    """The billing configuration whose subscriptions ask the stored payment methods."""
    return replace(config, payment_methods=StoredPaymentMethods)


def billing_config(settings: Settings) -> BillingConfig:
    """What every process composes billing with: the settings, and payments answering for methods."""
    return with_payment_methods(BillingConfig.from_settings(settings))
