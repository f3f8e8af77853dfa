"""Payment methods: tokens and display data, one default (priority 0) and an ordered fallback list.
Methods arrive through setup sessions (the provider's hosted page, then a webhook) and leave by detach."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import BillingConfig
from gateway.customers.models import Customer
from gateway.db.session import Database
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.payments.domain import MethodStatus
from gateway.payments.models import (
    PaymentMethod,
    PaymentProviderAccount,
    ProviderCustomer,
    SetupSessionRecord,
)
from gateway.payments.port import MethodDetails, MethodType, ProviderRejected
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.service import PaymentMethodNotFound, PaymentService, PaymentSettings


@contextmanager
def refusals_as_conflicts() -> Iterator[None]:
    """The provider refusing a method call (an unknown method, an unsupported currency) is the caller's
    409 with the provider's normalised reason, never a 500. (`ProviderUnavailable` is already a 503.)"""
    try:
        yield
    except ProviderRejected as exc:
        raise Conflict(str(exc), code=exc.code) from None


class MethodService:
    def __init__(self, core: PaymentService) -> None:
        self.core = core
        self.repo = core.repo

    async def list(self, customer: Customer, *, include_detached: bool = False) -> Sequence[PaymentMethod]:
        return await self.repo.methods_of(customer.id, active_only=not include_detached)

    async def get(self, customer: Customer, method_id: str, *, for_update: bool = False) -> PaymentMethod:
        method = await self.repo.get_method(method_id, scope=customer.id, for_update=for_update)
        if method is None:
            raise PaymentMethodNotFound(f"no payment method {method_id!r}")
        return method

    async def usable(self, customer: Customer, method_id: str) -> PaymentMethod:
        """A method this customer may be charged on now: its own (else a 404, never another's), active."""
        method = await self.get(customer, method_id)
        if method.status != MethodStatus.ACTIVE:
            raise Conflict(
                f"payment method {method_id} is {method.status}",
                code="payment_method_unusable",
                field="payment_method",
            )
        return method

    async def default(self, customer: Customer) -> PaymentMethod | None:
        active = await self.repo.methods_of(customer.id, active_only=True)
        return active[0] if active else None

    async def _renumber(self, customer: Customer, first: PaymentMethod | None, at: datetime) -> None:
        """Priorities 0, 1, 2… over the active methods, `first` (if given) at 0, the rest in their order."""
        active = [m for m in await self.repo.methods_of(customer.id, active_only=True) if m is not first]
        ordered = ([first] if first is not None else []) + active
        for priority, method in enumerate(ordered):
            if method.priority != priority:
                method.priority = priority
                method.updated_at = at
        await self.repo.flush()

    async def set_default(self, customer: Customer, method_id: str) -> PaymentMethod:
        method = await self.usable(customer, method_id)
        at = await self.core.now_for(customer)
        await self._renumber(customer, method, at)
        await self.core.emit_method("payment_method.updated", method, at, change="default")
        return method

    async def set_priority(self, customer: Customer, method_id: str, priority: int) -> PaymentMethod:
        """Move a method to `priority` in the fallback order (0 = the default)."""
        method = await self.usable(customer, method_id)
        at = await self.core.now_for(customer)
        others = [m for m in await self.repo.methods_of(customer.id, active_only=True) if m is not method]
        if priority > len(others):
            raise ValidationFailed(f"priority must be between 0 and {len(others)}", field="priority")
        others.insert(priority, method)
        for n, row in enumerate(others):
            if row.priority != n:
                row.priority = n
                row.updated_at = at
        await self.repo.flush()
        await self.core.emit_method("payment_method.updated", method, at, change="priority")
        return method

    async def detach(self, customer: Customer, method_id: str) -> PaymentMethod:
        method = await self.get(customer, method_id, for_update=True)
        if method.status == MethodStatus.DETACHED:
            return method
        account = await self.core.get_account(method.account_id)
        # Not a charge: detaching at the provider inside this transaction holds only this row.
        with refusals_as_conflicts():
            await self.core.provider(account).detach_method(method.provider_method_id)
        return await self.mark_detached(customer, method)

    async def mark_detached(self, customer: Customer, method: PaymentMethod) -> PaymentMethod:
        at = await self.core.now_for(customer)
        method.status = MethodStatus.DETACHED
        method.updated_at = at
        await self.repo.flush()
        await self._renumber(customer, None, at)
        await self.core.emit_method("payment_method.detached", method, at)
        return method

    async def attach(
        self, customer: Customer, account: PaymentProviderAccount, details: MethodDetails
    ) -> tuple[PaymentMethod, bool]:
        """Record a method the provider saved for this customer (idempotent by provider method id).
        The first active method becomes the default; later ones go to the end of the fallback order."""
        existing = await self.repo.method_by_provider_id(account.id, details.provider_method_id)
        if existing is not None:
            return existing, False
        at = await self.core.now_for(customer)
        active = await self.repo.methods_of(customer.id, active_only=True)
        method = PaymentMethod(
            id=new_id("pm"),
            tenant_id=customer.id,
            account_id=account.id,
            provider_method_id=details.provider_method_id,
            type=details.type.value if isinstance(details.type, MethodType) else str(details.type),
            brand=details.brand,
            last4=details.last4,
            exp_month=details.exp_month,
            exp_year=details.exp_year,
            mandate_reference=details.mandate_reference,
            bank=details.bank,
            status=MethodStatus.ACTIVE,
            priority=len(active),
            created_at=at,
            updated_at=at,
        )
        self.repo.add(method)
        await self.repo.flush()
        await self.core.emit_method("payment_method.attached", method, at)
        return method, True

    async def update_details(self, method: PaymentMethod, details: MethodDetails, at: datetime) -> None:
        """The account updater gave the card a new expiry (or number behind the same token)."""
        method.brand = details.brand or method.brand
        method.last4 = details.last4 or method.last4
        method.exp_month = details.exp_month or method.exp_month
        method.exp_year = details.exp_year or method.exp_year
        if method.status == MethodStatus.EXPIRED:
            method.status = MethodStatus.ACTIVE
        method.updated_at = at
        await self.repo.flush()
        await self.core.emit_method("payment_method.updated", method, at, change="account_updater")

    async def start_setup(
        self, customer: Customer, *, return_url: str, method_types: tuple[MethodType, ...]
    ) -> SetupSessionRecord:
        account = await self.core.account_for(customer)
        provider_customer = await self.core.provider_customer_id(customer, account)
        at = await self.core.now_for(customer)
        record_id = new_id("seti")
        with refusals_as_conflicts():
            session = await self.core.provider(account).create_setup_session(
                provider_customer_id=provider_customer,
                return_url=return_url,
                method_types=method_types,
                idempotency_key=f"setup:{record_id}",
                currency=customer.currency,
                at=at,
                clock_ref=customer.test_clock_id,
            )
        record = SetupSessionRecord(
            id=record_id,
            tenant_id=customer.id,
            account_id=account.id,
            provider_session_id=session.provider_session_id,
            url=session.url,
            return_url=return_url,
            status="open",
            created_at=at,
            completed_at=None,
        )
        self.repo.add(record)
        await self.repo.flush()
        return record


class MethodCalls:
    """Setup sessions and detach, each provider call made with no transaction open (like collection):
    read what the call needs and commit, call the provider, then apply the answer in a new transaction.
    Owns its transactions (never call it inside a request's unit of work)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        registry: ProviderRegistry,
        billing_config: BillingConfig | None = None,
        settings: PaymentSettings | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.registry = registry
        self.billing_config = billing_config
        self.settings = settings
        self.actor = actor

    def core(self, session: AsyncSession) -> PaymentService:
        return PaymentService(session, self.clock, self.registry, self.billing_config, self.settings)

    async def start_setup(
        self,
        customer_id: str,
        *,
        scope: str | None,
        return_url: str,
        method_types: tuple[MethodType, ...],
    ) -> SetupSessionRecord:
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            customer = await core.billing.customers.get(customer_id, scope=scope)
            account = await core.account_for(customer)
            mapping = await core.repo.provider_customer(customer.id, account.id)
            provider_customer = mapping.provider_customer_id if mapping is not None else None
            at = await core.now_for(customer)
            name, email, currency, clock_ref = (
                customer.name,
                customer.email,
                customer.currency,
                customer.test_clock_id,
            )
        provider = self.registry.provider(account)
        if provider_customer is None:
            # Idempotent at the provider under this key: a racing request gets the same customer back.
            with refusals_as_conflicts():
                provider_customer = await provider.create_customer(
                    customer_id=customer_id,
                    name=name,
                    email=email,
                    idempotency_key=f"customer:{customer_id}:account:{account.id}",
                )
            async with self.db.unit_of_work(actor=self.actor) as session:
                core = self.core(session)
                if await core.repo.provider_customer(customer_id, account.id) is None:
                    core.repo.add(
                        ProviderCustomer(
                            id=new_id("ppc"),
                            tenant_id=customer_id,
                            account_id=account.id,
                            provider_customer_id=provider_customer,
                            created_at=self.clock.now(),
                        )
                    )
        record_id = new_id("seti")
        with refusals_as_conflicts():
            opened = await provider.create_setup_session(
                provider_customer_id=provider_customer,
                return_url=return_url,
                method_types=method_types,
                idempotency_key=f"setup:{record_id}",
                currency=currency,
                at=at,
                clock_ref=clock_ref,
            )
        record = SetupSessionRecord(
            id=record_id,
            tenant_id=customer_id,
            account_id=account.id,
            provider_session_id=opened.provider_session_id,
            url=opened.url,
            return_url=return_url,
            status="open",
            created_at=at,
            completed_at=None,
        )
        async with self.db.unit_of_work(actor=self.actor) as session:
            session.add(record)
        return record

    async def detach(self, customer_id: str, method_id: str, *, scope: str | None) -> PaymentMethod:
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            customer = await core.billing.customers.get(customer_id, scope=scope)
            method = await MethodService(core).get(customer, method_id)
            if method.status == MethodStatus.DETACHED:
                return method
            account = await core.get_account(method.account_id)
            provider_method_id = method.provider_method_id
        with refusals_as_conflicts():
            await self.registry.provider(account).detach_method(provider_method_id)
        async with self.db.unit_of_work(actor=self.actor) as session:
            core = self.core(session)
            customer = await core.billing.customers.get(customer_id, scope=scope)
            methods = MethodService(core)
            method = await methods.get(customer, method_id, for_update=True)
            if method.status == MethodStatus.DETACHED:
                return method  # detached meanwhile (a second request, the provider's webhook)
            return await methods.mark_detached(customer, method)
