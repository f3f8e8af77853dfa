"""Hosted checkout sessions: the app (or the pricing page) opens one, the visitor completes it on
`/checkout/{token}`, and completing creates the customer and the subscription through the same services
as `POST /v1/customers` and `POST /v1/subscriptions` (promotion codes, trials, one trial per product),
then emits `checkout.completed`.

The link's token is random, shown once, stored as its SHA-256, valid for `SESSION_TTL`, and single use
(a completed session refuses a second completion). Everything a completion writes is in the caller's
unit of work: a refused promotion code leaves no customer behind."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogService
from gateway.catalog.models import Price
from gateway.customers import CustomerService
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.portal.experiment_models import CheckoutSession
from gateway.portal.experiment_service import ExperimentService, monthly_value
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.service import SubscriptionService

SESSION_TTL = timedelta(hours=24)
TOKEN_PREFIX = "cs_live_"


class CheckoutSessionNotFound(NotFound):
    code = "checkout_session_not_found"


class CheckoutSessionClosed(Conflict):
    code = "checkout_session_closed"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_url(url: str | None, field: str) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed(f"{field} must be an absolute http(s) URL", field=field)


@dataclass(frozen=True, slots=True)
class Opened:
    session: CheckoutSession
    token: str  # shown once: the link is `/checkout/<token>`


@dataclass(frozen=True, slots=True)
class BillingDetails:
    name: str
    email: str
    country: str | None = None


class CheckoutService:
    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        catalog: CatalogService,
        customers: CustomerService,
        subscriptions: SubscriptionService,
        experiments: ExperimentService,
    ) -> None:
        self.session = session
        self.clock = clock
        self.catalog = catalog
        self.customers = customers
        self.subscriptions = subscriptions
        self.experiments = experiments

    async def _event(self, type_: str, row: CheckoutSession) -> None:
        await record_event(
            self.session,
            DomainEvent(
                type_,
                "checkout_session",
                row.id,
                self.clock.now(),
                data={
                    "status": row.status,
                    "customer": row.customer_id,
                    "subscription": row.subscription_id,
                    "price": row.price_id,
                    "experiment": row.experiment_id,
                    "variant": row.variant,
                },
                tenant_id=row.customer_id,
            ),
        )

    async def create(
        self,
        *,
        product: str | None,
        price: str | None,
        success_url: str,
        cancel_url: str | None = None,
        customer: str | None = None,
        currency: str | None = None,
        trial_days: int | None = None,
        allow_promotion_codes: bool = True,
        locale: str | None = None,
        visitor_key: str | None = None,
        experiment_id: str | None = None,
        variant: str | None = None,
    ) -> Opened:
        check_url(success_url, "success_url")
        check_url(cancel_url, "cancel_url")
        if product is None and price is None:
            raise ValidationFailed("give a product (the visitor picks a plan) or a price", field="product")
        price_row: Price | None = None
        if price is not None:
            price_row = await self.catalog.get_price(price)
            plan = await self.catalog.get_plan(price_row.plan_id)
            if product is not None and (await self.catalog.get_product(product)).id != plan.product_id:
                raise ValidationFailed(f"price {price} is not a price of product {product}", field="price")
            product_id = plan.product_id
        else:
            assert product is not None
            product_id = (await self.catalog.get_product(product)).id
        if currency is not None:
            currency = currency.upper()
            if price_row is not None and currency not in price_row.currency_options:
                raise ValidationFailed(f"price {price} has no amount in {currency}", field="currency")
        if customer is not None:
            customer = (await self.customers.get(customer)).id
        if trial_days is not None and not 0 <= trial_days <= 730:
            raise ValidationFailed("trial_days must be between 0 and 730", field="trial_days")
        if experiment_id is not None and visitor_key is not None:
            await self.experiments.checkout_started(experiment_id, visitor_key)
        now = self.clock.now()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = CheckoutSession(
            id=new_id("cs"),
            token_hash=token_digest(token),
            status="open",
            product_id=product_id,
            price_id=price_row.id if price_row else None,
            currency=currency,
            success_url=success_url,
            cancel_url=cancel_url,
            customer_id=customer,
            trial_days=trial_days,
            allow_promotion_codes=allow_promotion_codes,
            locale=locale,
            experiment_id=experiment_id,
            visitor_key=visitor_key,
            variant=variant,
            subscription_id=None,
            promotion_code=None,
            created_at=now,
            expires_at=now + SESSION_TTL,
            completed_at=None,
        )
        self.session.add(row)
        await self.session.flush()
        await self._event("checkout_session.created", row)
        return Opened(row, token)

    async def get(self, session_id: str) -> CheckoutSession:
        row = await self.session.get(CheckoutSession, session_id)
        if row is None:
            raise CheckoutSessionNotFound(f"no checkout session {session_id!r}")
        return self._expire_if_due(row)

    async def by_token(self, token: str, *, for_update: bool = False) -> CheckoutSession:
        query = select(CheckoutSession).where(CheckoutSession.token_hash == token_digest(token[:200]))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).scalar_one_or_none()
        if row is None:
            raise CheckoutSessionNotFound("this checkout link is unknown")
        return self._expire_if_due(row)

    def _expire_if_due(self, row: CheckoutSession) -> CheckoutSession:
        if row.status == "open" and self.clock.now() >= row.expires_at:
            row.status = "expired"
        return row

    async def complete(
        self,
        token: str,
        *,
        price: str,
        details: BillingDetails | None,
        promotion_code: str | None = None,
        trial: bool = True,
    ) -> tuple[CheckoutSession, Subscription]:
        """Create (or take) the customer and its subscription. `trial=False` skips the trial and bills the
        first period now (the invoice is sent: the hosted card page is not part of this checkout yet)."""
        row = await self.by_token(token, for_update=True)
        if row.status != "open":
            raise CheckoutSessionClosed(f"this checkout session is {row.status}")
        price_row = await self.catalog.get_price(price)
        plan = await self.catalog.get_plan(price_row.plan_id)
        if plan.product_id != row.product_id or (row.price_id and price_row.id != row.price_id):
            raise ValidationFailed("choose one of this checkout's plans", field="price")
        if promotion_code and not row.allow_promotion_codes:
            raise ValidationFailed("this checkout takes no promotion code", field="promotion_code")
        if row.customer_id is not None:
            customer_id = row.customer_id
        else:
            if details is None:
                raise ValidationFailed("billing details are required", field="name")
            currency = row.currency or next(iter(price_row.currency_options))
            created = await self.customers.create(
                name=details.name, email=details.email, country=details.country, currency=currency
            )
            customer_id = created.id
        variant_trial = await self._variant_trial(row)
        trial_days = row.trial_days if row.trial_days is not None else variant_trial
        sub = await self.subscriptions.create(
            customer_id=customer_id,
            price=price_row.id,
            currency=row.currency,
            trial_days=trial_days if trial else 0,
            promotion_code=promotion_code or None,
            collection_method=None if trial else "send_invoice",
            days_until_due=None if trial else 14,
        )
        now = self.clock.now()
        row.status, row.completed_at = "complete", now
        row.customer_id, row.subscription_id, row.price_id = customer_id, sub.id, price_row.id
        row.promotion_code = (promotion_code or "").upper() or None
        if row.experiment_id and row.visitor_key:
            await self.experiments.converted(
                row.experiment_id,
                row.visitor_key,
                customer_id=customer_id,
                subscription_id=sub.id,
                mrr=monthly_value(price_row, sub.currency),
                currency=sub.currency,
            )
        await self.session.flush()
        await self._event("checkout.completed", row)
        return row, sub

    async def _variant_trial(self, row: CheckoutSession) -> int | None:
        if not (row.experiment_id and row.variant):
            return None
        experiment = await self.experiments.get(row.experiment_id)
        for variant in experiment.variants:
            if variant.get("key") == row.variant:
                trial = variant.get("trial_days")
                return int(trial) if trial is not None else None
        return None
