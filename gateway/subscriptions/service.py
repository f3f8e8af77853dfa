"""Subscription use cases: create (with trial), change plan, seats, add-ons, pause/resume, cancel, undo,
and the time-driven steps (trial end, rollover, scheduled changes) for the wall clock and test clocks.

Every change bumps `version`, recomputes `next_action_at`, and writes its event to the outbox in the
same transaction. Time is always the *customer's* time: its test clock's if it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.catalog import CatalogService, price_terms
from gateway.catalog.domain import PlanKind
from gateway.catalog.models import Plan, PlanVersion, Price
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.db.bulk import start_buffering, stop_buffering, write_buffered
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock, ensure_utc, format_timestamp, isoformat_or_none
from gateway.kernel.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.kernel.periods import Alignment, Interval, first_period, period_containing, period_end_after
from gateway.subscriptions.domain import (
    LIVE_STATUSES,
    RUNNING_STATUSES,
    TERMINAL_STATUSES,
    TRIAL_WILL_END_NOTICE,
    CancellationFeedback,
    ChangeTiming,
    CollectionMethod,
    Due,
    ProrationBehavior,
    ResumeAnchor,
    Status,
    TrialEndBehavior,
    collection_terms,
    is_upgrade,
    next_due,
    require,
    transition,
)
from gateway.subscriptions.hooks import SubscriptionListener
from gateway.subscriptions.models import Subscription, SubscriptionAddon
from gateway.subscriptions.ports import NO_PAYMENT_METHODS, PaymentMethodLookup
from gateway.subscriptions.repository import SubscriptionRepository

MAX_QUANTITY = 1_000_000
MAX_TRIAL_EXTENSION = timedelta(days=730)  # how far from now an extended trial may end
MAX_TRIAL_DAYS = 730
# Safety valve for one advance: 10 years of monthly periods plus trial steps, far beyond any real use.
MAX_STEPS_PER_ADVANCE = 200

IfMatch = frozenset[int] | None
"""The versions an `If-Match` header accepts (None: no condition)."""


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"


class SubscriptionExists(Conflict):
    code = "subscription_exists"


@dataclass(frozen=True, slots=True)
class AddonInput:
    price: str
    quantity: int = 1


class SubscriptionService:
    def __init__(
        self,
        repository: SubscriptionRepository,
        catalog: CatalogService,
        customers: CustomerService,
        clock: Clock,
        listeners: Sequence[SubscriptionListener] = (),
        *,
        payment_methods: PaymentMethodLookup = NO_PAYMENT_METHODS,
    ) -> None:
        self.repo = repository
        self.catalog = catalog
        self.customers = customers
        self.clock = clock
        self.listeners = tuple(listeners)
        # Asked at trial end (rule 17); the payments domain answers, through the composition root.
        self.payment_methods = payment_methods

    # -- time ------------------------------------------------------------------------------------
    async def now_for(self, test_clock_id: str | None) -> datetime:
        if test_clock_id is None:
            return self.clock.now()
        test_clock = await self.repo.get_clock(test_clock_id)
        if test_clock is None:  # the FK makes this impossible short of a concurrent delete
            raise NotFound(f"test clock {test_clock_id} is gone")
        return test_clock.frozen_time

    # -- bookkeeping -----------------------------------------------------------------------------
    async def _emit(self, sub: Subscription, type_: str, at: datetime, **data: Any) -> None:
        payload = {"subscription": snapshot(sub), **data}
        event = DomainEvent(type_, "subscription", sub.id, at, data=payload, tenant_id=sub.tenant_id)
        await record_event(self.repo.session, event)
        for listener in self.listeners:
            await listener.on_event(sub, type_, at, data)

    def _touch(self, sub: Subscription, at: datetime) -> None:
        sub.version += 1
        sub.updated_at = at
        due = next_due(sub)
        sub.next_action_at = due[0] if due else None

    # -- reads -----------------------------------------------------------------------------------
    async def get(
        self, subscription_id: str, *, scope: str | None = None, for_update: bool = False
    ) -> Subscription:
        sub = await self.repo.get(subscription_id, scope=scope, for_update=for_update)
        if sub is None:
            raise SubscriptionNotFound(f"no subscription {subscription_id!r}")
        return sub

    async def list(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        customer_id: str | None = None,
        status: str | None = None,
        plan: str | None = None,
    ) -> Page[Subscription]:
        if status is not None and status not in {s.value for s in Status}:
            raise ValidationFailed(f"unknown status {status!r}", field="status")
        plan_id = (await self.catalog.get_plan(plan)).id if plan else None
        rows = await self.repo.list(
            after=after, limit=limit, scope=scope, customer_id=customer_id, status=status, plan_id=plan_id
        )
        return Page.from_overfetch(rows, limit)

    async def addons(self, sub: Subscription) -> Sequence[SubscriptionAddon]:
        return await self.repo.addons(sub.id)

    async def prefetch_addons(self, subs: Sequence[Subscription]) -> None:
        await self.repo.prefetch_addons([s.id for s in subs])

    async def live_for_tenant(self, tenant_id: str) -> Subscription | None:
        return await self.repo.live_for_tenant(tenant_id)

    # -- create ----------------------------------------------------------------------------------
    async def _base_price(self, price_ref: str, currency: str) -> tuple[Price, Plan]:
        price = await self.catalog.get_price(price_ref)
        plan = await self.catalog.ensure_price_usable(price, for_plan_kind=PlanKind.BASE)
        if currency not in price.currency_options:
            raise ValidationFailed(
                f"price {price.id} has no amount in {currency}", code="currency_not_offered", field="price"
            )
        return price, plan

    async def create(
        self,
        *,
        customer_id: str,
        price: str,
        quantity: int = 1,
        currency: str | None = None,
        trial_days: int | None = None,
        trial_end_behavior: str = TrialEndBehavior.CREATE_INVOICE,
        alignment: str | None = None,
        addons: Sequence[AddonInput] = (),
        metadata: dict[str, Any] | None = None,
        coupon: str | None = None,
        promotion_code: str | None = None,
        allow_repeat_trial: bool = False,
        collection_method: str | None = None,
        days_until_due: int | None = None,
        scope: str | None = None,
    ) -> Subscription:
        if coupon and promotion_code:
            raise ValidationFailed("give a coupon or a promotion_code, not both", field="coupon")
        customer = await self.customers.get(customer_id, scope=scope)
        _check_quantity(quantity)
        try:
            behavior = TrialEndBehavior(trial_end_behavior)
        except ValueError:
            raise ValidationFailed(
                f"unknown trial_end_behavior {trial_end_behavior!r}", field="trial_end_behavior"
            ) from None
        collection, due_days = collection_terms(
            collection_method, days_until_due, default_method=CollectionMethod.CHARGE_AUTOMATICALLY
        )
        price_row = await self.catalog.get_price(price)
        sub_currency = self._currency_for(customer, price_row, currency)
        price_row, plan = await self._base_price(price, sub_currency)
        # One live subscription per tenant: the tenant's tier is what the gateway decides on.
        if await self.repo.live_for_tenant(customer.id) is not None:
            raise SubscriptionExists(f"customer {customer.id} already has a live subscription")

        now = await self.now_for(customer.test_clock_id)
        terms = price_terms(price_row)
        try:
            align = Alignment(alignment) if alignment else terms.alignment
        except ValueError:
            raise ValidationFailed(f"unknown alignment {alignment!r}", field="alignment") from None
        days = await self._trial_days(customer, plan, trial_days, allow_repeat=allow_repeat_trial)
        plan_terms = await self.catalog.terms(plan.id)

        sub = Subscription(
            id=new_id("sub"),
            tenant_id=customer.id,
            product_id=plan.product_id,
            plan_id=plan.id,
            plan_version_id=plan_terms.version.id,
            price_id=price_row.id,
            quantity=quantity,
            currency=sub_currency,
            interval=terms.interval.value,
            alignment=align.value,
            started_at=now,
            trial_end_behavior=behavior.value,
            collection_method=collection.value,
            days_until_due=due_days,
            cancel_at_period_end=False,
            test_clock_id=customer.test_clock_id,
            metadata_=metadata or {},
            version=0,
            created_at=now,
            updated_at=now,
        )
        if days:
            trial_end = now + timedelta(days=days)
            sub.status = Status.TRIALING.value
            sub.trial_start, sub.trial_end = now, trial_end
            sub.billing_cycle_anchor = trial_end
            sub.current_period_start, sub.current_period_end = now, trial_end
        else:
            sub.status = Status.ACTIVE.value
            sub.activated_at = now
            self._start_paid_periods(sub, now, terms.interval, align)
        self.repo.add(sub)
        await self.repo.flush()
        for addon in addons:
            await self._attach_addon(sub, plan, addon, now)
        self._touch(sub, now)
        await self.repo.flush()
        # Billing redeems the coupon and invoices the first paid period when it hears of the creation.
        discount = {"coupon": coupon, "promotion_code": promotion_code} if coupon or promotion_code else None
        await self._emit(sub, "subscription.created", now, **({"discount": discount} if discount else {}))
        return sub

    @staticmethod
    def _currency_for(customer: Customer, price: Price, requested: str | None) -> str:
        if requested:
            chosen = requested.upper()
            if customer.currency and chosen != customer.currency:
                raise ValidationFailed(
                    f"customer {customer.id} is billed in {customer.currency}",
                    code="currency_mismatch",
                    field="currency",
                )
            return chosen
        if customer.currency:
            return customer.currency
        if len(price.currency_options) == 1:
            return next(iter(price.currency_options))
        raise ValidationFailed(
            "price has several currencies and the customer none: say which with `currency`", field="currency"
        )

    async def _trial_days(
        self, customer: Customer, plan: Plan, requested: int | None, *, allow_repeat: bool = False
    ) -> int:
        if requested is not None and not 0 <= requested <= MAX_TRIAL_DAYS:
            raise ValidationFailed(f"trial_days must be between 0 and {MAX_TRIAL_DAYS}", field="trial_days")
        days = plan.trial_days if requested is None else requested
        if not days:
            return 0
        # One trial per customer per product (rule 17): silently none when the plan's default would
        # give a second one, refused when a second trial is asked for explicitly.
        if not allow_repeat and await self.repo.had_trial(customer.id, plan.product_id):
            if requested is not None:
                raise Conflict(
                    f"customer {customer.id} already had a trial of this product", code="trial_already_used"
                )
            return 0
        return days

    @staticmethod
    def _start_paid_periods(sub: Subscription, start: datetime, interval: Interval, align: Alignment) -> None:
        anchor, period_start, period_end = first_period(start, interval, align)
        sub.billing_cycle_anchor = anchor
        sub.current_period_start, sub.current_period_end = period_start, period_end

    async def _attach_addon(
        self, sub: Subscription, base_plan: Plan, addon: AddonInput, at: datetime
    ) -> SubscriptionAddon:
        _check_quantity(addon.quantity)
        price = await self.catalog.get_price(addon.price)
        plan = await self.catalog.ensure_price_usable(price, for_plan_kind=PlanKind.ADDON)
        if plan.compatible_plans and base_plan.key not in plan.compatible_plans:
            raise ValidationFailed(
                f"add-on {plan.key} is not available on plan {base_plan.key}", field="addons"
            )
        if sub.currency not in price.currency_options:
            raise ValidationFailed(f"add-on price {price.id} has no amount in {sub.currency}", field="addons")
        if price.interval != sub.interval:
            raise ValidationFailed("an add-on must bill on the subscription's interval", field="addons")
        for existing in await self.repo.addons(sub.id):
            if existing.plan_id == plan.id:
                raise Conflict(f"add-on {plan.key} is already on this subscription", code="addon_exists")
        terms = await self.catalog.terms(plan.id)
        row = SubscriptionAddon(
            id=new_id("si"),
            tenant_id=sub.tenant_id,
            subscription_id=sub.id,
            plan_id=plan.id,
            plan_version_id=terms.version.id,
            price_id=price.id,
            quantity=addon.quantity,
            created_at=at,
        )
        self.repo.add(row)
        await self.repo.flush()
        return row

    # -- changes ---------------------------------------------------------------------------------
    async def _load_live(
        self, subscription_id: str, scope: str | None, if_match: IfMatch = None
    ) -> tuple[Subscription, datetime]:
        # Locked to the end of the transaction (see SubscriptionRepository): the change below applies to
        # the current row, and nothing else changes it before this transaction commits.
        sub = await self.get(subscription_id, scope=scope, for_update=True)
        check_precondition(sub, if_match)
        # Read after the lock: a test-clock advance that held the row has committed its clock time too.
        now = await self.now_for(sub.test_clock_id)
        # Apply whatever was due before acting, so a change never lands on a stale period.
        await self._run_due_steps(sub, now)
        return sub, now

    async def change_plan(
        self,
        subscription_id: str,
        *,
        price: str,
        quantity: int | None = None,
        timing: str | None = None,
        proration_behavior: str | None = None,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        behavior = _proration_behavior(proration_behavior)
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, LIVE_STATUSES - {Status.PAUSED}, "change the plan of")
        if quantity is not None:
            _check_quantity(quantity)
        new_price, new_plan = await self._base_price(price, sub.currency)
        new_quantity = quantity if quantity is not None else sub.quantity
        if new_price.id == sub.price_id and new_quantity == sub.quantity:
            raise Conflict("the subscription is already on this price and quantity", code="no_change")
        old_price = await self.catalog.get_price(sub.price_id)
        old_plan = await self.catalog.get_plan(sub.plan_id)
        old_terms, new_terms = price_terms(old_price), price_terms(new_price)
        upgrade = is_upgrade(
            old_terms.monthly_amount(sub.currency, sub.quantity),
            new_terms.monthly_amount(sub.currency, new_quantity),
            old_plan.rank,
            new_plan.rank,
        )
        interval_change = new_terms.interval != old_terms.interval
        try:
            chosen = ChangeTiming(timing) if timing else None
        except ValueError:
            raise ValidationFailed(f"unknown timing {timing!r}", field="timing") from None
        if interval_change and chosen is ChangeTiming.PERIOD_END:
            raise ValidationFailed(
                "an interval change resets the anchor and applies now (rule 13)", field="timing"
            )
        # Upgrades apply now, downgrades at the period end (rule 11), unless the caller says otherwise.
        effective = chosen or (ChangeTiming.NOW if upgrade or interval_change else ChangeTiming.PERIOD_END)

        previous = {"price": sub.price_id, "plan": old_plan.key, "quantity": sub.quantity}
        if effective is ChangeTiming.PERIOD_END:
            sub.scheduled_price_id = new_price.id
            sub.scheduled_quantity = new_quantity
            sub.scheduled_change_at = sub.current_period_end
            self._touch(sub, now)
            await self.repo.flush()
            await self._emit(
                sub,
                "subscription.plan_change_scheduled",
                now,
                previous=previous,
                direction="upgrade" if upgrade else "downgrade",
            )
            return sub

        new_version = await self.catalog.terms(new_plan.id)
        previous["period_start"] = format_timestamp(sub.current_period_start)
        previous["period_end"] = format_timestamp(sub.current_period_end)
        sub.plan_id, sub.plan_version_id, sub.price_id = new_plan.id, new_version.version.id, new_price.id
        sub.product_id = new_plan.product_id
        sub.quantity = new_quantity
        sub.scheduled_price_id = sub.scheduled_quantity = sub.scheduled_change_at = None
        if interval_change:
            sub.interval = new_terms.interval.value
            if Status(sub.status) in RUNNING_STATUSES:
                # Rule 13: a new interval resets the anchor to now; billing credits the unused old period.
                self._start_paid_periods(sub, now, new_terms.interval, Alignment.ANNIVERSARY)
                sub.alignment = Alignment.ANNIVERSARY.value
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(
            sub,
            "subscription.plan_changed",
            now,
            previous=previous,
            direction="upgrade" if upgrade else "downgrade",
            interval_changed=interval_change,
            proration_behavior=behavior,
        )
        return sub

    async def migrate_plan_version(
        self,
        subscription_id: str,
        *,
        to: PlanVersion,
        from_versions: Mapping[str, int],
        matches: Callable[[Subscription], bool],
    ) -> Subscription | None:
        """Move one subscription to version `to` of its plan, or of the add-on plan attached to it
        (`PlanVersionMigrations` picks them): under its lock, and only if it is still live, its plan (or
        attached add-on) is still on one of `from_versions` (version id → number) and it still `matches`
        the rule; else None and nothing changes. The grants change with the version; the price,
        quantity, periods and billing do not (a plan version carries grants only)."""
        sub, now = await self._load_live(subscription_id, None)
        if Status(sub.status) not in LIVE_STATUSES or not matches(sub):
            return None
        data: dict[str, Any] = {}
        if sub.plan_id == to.plan_id:
            previous = sub.plan_version_id
            if previous not in from_versions:
                return None
            sub.plan_version_id = to.id
        else:
            addon = next((a for a in await self.repo.addons(sub.id) if a.plan_id == to.plan_id), None)
            if addon is None or addon.plan_version_id not in from_versions:
                return None
            previous = addon.plan_version_id
            addon.plan_version_id = to.id
            data["addon"] = {"id": addon.id, "price": addon.price_id, "quantity": addon.quantity}
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(
            sub,
            "subscription.plan_version_migrated",
            now,
            previous_plan_version={"id": previous, "version": from_versions[previous]},
            plan_version={"id": to.id, "version": to.version},
            **data,
        )
        return sub

    async def cancel_scheduled_change(
        self,
        subscription_id: str,
        *,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        sub, now = await self._load_live(subscription_id, scope, if_match)
        if sub.scheduled_price_id is None:
            raise Conflict("the subscription has no scheduled change", code="no_scheduled_change")
        sub.scheduled_price_id = sub.scheduled_quantity = sub.scheduled_change_at = None
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(sub, "subscription.plan_change_unscheduled", now)
        return sub

    async def update(
        self,
        subscription_id: str,
        *,
        collection_method: str | None = None,
        days_until_due: int | None = None,
        trial_end_behavior: str | None = None,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        """Change how future invoices are collected and what a trial end does without a payment method.
        None leaves a field as it is; a new collection method drops the old `days_until_due` unless one
        is given. Invoices already finalised keep their terms."""
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, LIVE_STATUSES, "update")
        method = collection_method or sub.collection_method
        days = days_until_due
        if days is None and collection_method in (None, sub.collection_method):
            days = sub.days_until_due  # the method stays: so do its days
        chosen, days = collection_terms(method, days, default_method=CollectionMethod.CHARGE_AUTOMATICALLY)
        behavior = sub.trial_end_behavior
        if trial_end_behavior is not None:
            try:
                behavior = TrialEndBehavior(trial_end_behavior).value
            except ValueError:
                raise ValidationFailed(
                    f"unknown trial_end_behavior {trial_end_behavior!r}", field="trial_end_behavior"
                ) from None
        changed = {
            name: value
            for name, value in (
                ("collection_method", chosen.value),
                ("days_until_due", days),
                ("trial_end_behavior", behavior),
            )
            if getattr(sub, name) != value
        }
        if not changed:
            return sub
        previous = {name: getattr(sub, name) for name in changed}
        for name, value in changed.items():
            setattr(sub, name, value)
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(sub, "subscription.updated", now, previous=previous)
        return sub

    async def set_quantity(
        self,
        subscription_id: str,
        quantity: int | None = None,
        *,
        quantity_delta: int | None = None,
        proration_behavior: str | None = None,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        """Set the seats (`quantity`) or change them by `quantity_delta`. The delta applies to the
        quantity read under the subscription's lock, so concurrent "+1"s all count."""
        if (quantity is None) == (quantity_delta is None):
            raise ValidationFailed("give either quantity or quantity_delta", field="quantity")
        if quantity_delta is not None and (isinstance(quantity_delta, bool) or quantity_delta == 0):
            raise ValidationFailed("quantity_delta must not be 0", field="quantity_delta")
        behavior = _proration_behavior(proration_behavior)
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, LIVE_STATUSES - {Status.PAUSED}, "change the seats of")
        if quantity_delta is not None:
            quantity = sub.quantity + quantity_delta
            if not 1 <= quantity <= MAX_QUANTITY:
                raise ValidationFailed(
                    f"quantity_delta {quantity_delta:+d} would make {sub.quantity} seats {quantity}; "
                    f"the quantity must stay between 1 and {MAX_QUANTITY}",
                    code="quantity_out_of_range",
                    field="quantity_delta",
                )
        assert quantity is not None  # one of the two was given (checked above)
        _check_quantity(quantity)
        if quantity == sub.quantity:
            raise Conflict(f"the subscription already has {quantity} seats", code="no_change")
        previous = sub.quantity
        sub.quantity = quantity
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(
            sub,
            "subscription.quantity_changed",
            now,
            previous_quantity=previous,
            proration_behavior=behavior,
        )
        return sub

    async def add_addon(
        self,
        subscription_id: str,
        addon: AddonInput,
        *,
        proration_behavior: str | None = None,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> SubscriptionAddon:
        behavior = _proration_behavior(proration_behavior)
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, LIVE_STATUSES - {Status.PAUSED}, "add an add-on to")
        row = await self._attach_addon(sub, await self.catalog.get_plan(sub.plan_id), addon, now)
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(
            sub,
            "subscription.addon_added",
            now,
            addon={"id": row.id, "price": row.price_id, "quantity": row.quantity},
            proration_behavior=behavior,
        )
        return row

    async def remove_addon(
        self,
        subscription_id: str,
        addon_id: str,
        *,
        proration_behavior: str | None = None,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> SubscriptionAddon:
        behavior = _proration_behavior(proration_behavior)
        sub, now = await self._load_live(subscription_id, scope, if_match)
        row = await self.repo.addon(sub.id, addon_id)
        if row is None or row.removed_at is not None:
            raise NotFound(f"no add-on {addon_id!r} on this subscription", code="addon_not_found")
        row.removed_at = now
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(
            sub,
            "subscription.addon_removed",
            now,
            addon={"id": row.id, "price": row.price_id, "quantity": row.quantity},
            proration_behavior=behavior,
        )
        return row

    async def extend_trial(
        self,
        subscription_id: str,
        *,
        trial_end: datetime,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        """Move a trial's end later (support's "extend the trial"). Only a trialing subscription, only
        later than its current end and at most `MAX_TRIAL_EXTENSION` from now. The trial period and the
        billing anchor move with it; the 3-day reminder goes again when the new end is more than 3 days
        away (as Stripe's `customer.subscription.trial_will_end`)."""
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, frozenset({Status.TRIALING}), "extend the trial of")
        trial_end = ensure_utc(trial_end)
        assert sub.trial_end is not None  # a trialing subscription has its end
        if trial_end <= sub.trial_end:
            raise ValidationFailed(
                f"trial_end must be later than the current end {format_timestamp(sub.trial_end)}",
                field="trial_end",
            )
        if trial_end > now + MAX_TRIAL_EXTENSION:
            raise ValidationFailed(
                f"trial_end may be at most {MAX_TRIAL_EXTENSION.days} days from now", field="trial_end"
            )
        previous = sub.trial_end
        sub.trial_end = sub.current_period_end = sub.billing_cycle_anchor = trial_end
        if trial_end - TRIAL_WILL_END_NOTICE > now:
            sub.trial_will_end_notified_at = None
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(
            sub, "subscription.trial_extended", now, previous_trial_end=format_timestamp(previous)
        )
        return sub

    async def pause(
        self,
        subscription_id: str,
        *,
        resumes_at: datetime | None = None,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, RUNNING_STATUSES, "pause")
        if resumes_at is not None:
            resumes_at = ensure_utc(resumes_at)
            if resumes_at <= now:
                raise ValidationFailed("resumes_at must be in the future", field="resumes_at")
        transition(sub, Status.PAUSED, now)
        sub.resumes_at = resumes_at
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(sub, "subscription.paused", now)
        return sub

    async def resume(
        self,
        subscription_id: str,
        *,
        anchor: str = ResumeAnchor.NOW,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        sub, now = await self._load_live(subscription_id, scope, if_match)
        try:
            resume_anchor = ResumeAnchor(anchor)
        except ValueError:
            raise ValidationFailed(
                f"unknown billing_cycle_anchor {anchor!r}", field="billing_cycle_anchor"
            ) from None
        await self._resume(sub, now, resume_anchor)
        return sub

    async def _resume(self, sub: Subscription, at: datetime, anchor: ResumeAnchor) -> None:
        transition(sub, Status.ACTIVE, at)
        sub.resumes_at = None
        interval = Interval(sub.interval)
        if anchor is ResumeAnchor.NOW:
            self._start_paid_periods(sub, at, interval, Alignment.ANNIVERSARY)
        elif sub.current_period_end <= at:
            # Keep the anchor: skip (without billing) the periods that passed while paused.
            sub.current_period_start, sub.current_period_end = period_containing(
                sub.billing_cycle_anchor, interval, at
            )
        self._touch(sub, at)
        await self.repo.flush()
        await self._emit(sub, "subscription.resumed", at, billing_cycle_anchor=anchor.value)

    async def cancel(
        self,
        subscription_id: str,
        *,
        at_period_end: bool,
        reason: str | None = None,
        feedback: str | None = None,
        comment: str | None = None,
        prorate: bool = False,
        invoice_now: bool = False,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        if at_period_end and (prorate or invoice_now):
            raise ValidationFailed(
                "prorate and invoice_now apply to a cancellation now, not at the period end",
                field="prorate" if prorate else "invoice_now",
            )
        sub, now = await self._load_live(subscription_id, scope, if_match)
        require(sub, LIVE_STATUSES, "cancel")
        sub.cancellation_reason = reason
        sub.cancellation_feedback = _feedback(feedback)
        sub.cancellation_comment = comment
        if at_period_end:
            if Status(sub.status) is Status.PAUSED:
                raise Conflict(
                    "a paused subscription has no running period to end: cancel it now", code="paused"
                )
            if sub.cancel_at_period_end:
                raise Conflict(
                    "the subscription is already set to cancel at the period end", code="no_change"
                )
            sub.cancel_at_period_end = True
            sub.cancel_at = sub.current_period_end
            sub.canceled_at = now
            self._touch(sub, now)
            await self.repo.flush()
            await self._emit(
                sub, "subscription.cancel_scheduled", now, cancellation_details=cancellation_details(sub)
            )
            return sub
        # Billing reads these: credit the unused time (`prorate`) and bill what is left now (`invoice_now`).
        await self._end(sub, Status.CANCELED, now, prorate=prorate, invoice_now=invoice_now)
        return sub

    async def undo_cancel(
        self,
        subscription_id: str,
        *,
        scope: str | None = None,
        if_match: IfMatch = None,
    ) -> Subscription:
        sub, now = await self._load_live(subscription_id, scope, if_match)
        if Status(sub.status) in TERMINAL_STATUSES:
            raise Conflict("the subscription has already ended; start a new one", code="invalid_transition")
        if not sub.cancel_at_period_end:
            raise Conflict("the subscription is not scheduled to cancel", code="no_scheduled_cancel")
        sub.cancel_at_period_end = False
        sub.cancel_at = sub.canceled_at = sub.cancellation_reason = None
        sub.cancellation_feedback = sub.cancellation_comment = None
        self._touch(sub, now)
        await self.repo.flush()
        await self._emit(sub, "subscription.cancel_unscheduled", now)
        return sub

    async def _end(self, sub: Subscription, status: Status, at: datetime, **data: Any) -> None:
        previous = transition(sub, status, at)
        if status is Status.CANCELED and sub.canceled_at is None:
            sub.canceled_at = at
        sub.scheduled_price_id = sub.scheduled_quantity = sub.scheduled_change_at = None
        self._touch(sub, at)
        await self.repo.flush()
        if status is Status.CANCELED:
            # Churn reports and webhook consumers read why the customer left from the event itself.
            data["cancellation_details"] = cancellation_details(sub)
        await self._emit(sub, f"subscription.{status.value}", at, previous_status=previous.value, **data)

    # -- time-driven steps -----------------------------------------------------------------------
    async def advance_due(self, at: datetime, *, test_clock_id: str | None = None, batch: int = 500) -> int:
        """Apply every step due at or before `at` to the subscriptions on the wall clock (or on one test
        clock). Returns how many steps ran. Safe to run twice: a step moves `next_action_at` past `at`."""
        steps = 0
        while True:
            # Locked, waiting for rows a concurrent change holds: a step must see that change (a plan
            # change that committed first is what the renewal bills), never a copy read before it.
            due = await self.repo.due(at, test_clock_id=test_clock_id, limit=batch, lock=True)
            if not due:
                return steps
            for sub in due:
                steps += await self._run_due_steps(sub, at)

    async def advance_batch(
        self, at: datetime, *, limit: int, test_clock_id: str | None = None
    ) -> tuple[int, int]:
        """Claim up to `limit` due subscriptions (skipping those another worker holds) and apply their
        steps due by `at`. Returns (subscriptions, steps). The caller commits: one batch, one
        transaction, so a crash loses at most the batch in flight, and the rerun redoes it."""
        due = await self.repo.due(at, test_clock_id=test_clock_id, limit=limit, claim=True)
        if not due:
            return 0, 0
        session = self.repo.session
        # Batch mode (gateway.db.bulk): flushes wait for the batch's end, and the rows the batch creates
        # (invoices, lines, events) are written then with one INSERT per table, before the ORM flush.
        start_buffering(session)
        try:
            await self.prefetch_addons(due)
            for listener in self.listeners:
                await listener.before_batch(due)
            steps = 0
            for sub in due:
                steps += await self._run_due_steps(sub, at)
            for listener in self.listeners:
                await listener.after_batch()
            await write_buffered(session)
        finally:
            stop_buffering(session)
        await session.flush()
        return len(due), steps

    async def _run_due_steps(self, sub: Subscription, until: datetime) -> int:
        steps = 0
        while (due := next_due(sub)) is not None and due[0] <= until:
            step_at, step = due
            if steps >= MAX_STEPS_PER_ADVANCE:
                raise Conflict(
                    "too many periods to advance in one call; advance in smaller steps",
                    code="advance_too_far",
                )
            await self._apply_step(sub, step, step_at, until)
            steps += 1
        return steps

    async def _apply_step(self, sub: Subscription, step: Due, step_at: datetime, now: datetime) -> None:
        if step is Due.TRIAL_WILL_END:
            # Short trials get it immediately (rule 16): at creation time, not 3 days before.
            sub.trial_will_end_notified_at = max(step_at, sub.trial_start or step_at)
            self._touch(sub, sub.trial_will_end_notified_at)
            await self.repo.flush()
            await self._emit(sub, "subscription.trial_will_end", sub.trial_will_end_notified_at)
        elif step is Due.TRIAL_END:
            await self._end_trial(sub, step_at)
        elif step is Due.AUTO_RESUME:
            await self._resume(sub, step_at, ResumeAnchor.NOW)
        elif step is Due.PERIOD_END:
            await self._roll_over(sub, step_at)
        elif step is Due.INCOMPLETE_EXPIRES:
            await self._end(sub, Status.INCOMPLETE_EXPIRED, step_at, reason="first_invoice_unpaid")

    async def mark_incomplete(self, sub: Subscription, at: datetime, **data: Any) -> bool:
        """The first invoice of this (just activated, charge_automatically) subscription failed: it is
        `incomplete` (no access) until that invoice is paid, and expires 23 hours after it started.
        Returns whether it changed (only an active subscription becomes incomplete)."""
        if Status(sub.status) is not Status.ACTIVE:
            return False
        previous = transition(sub, Status.INCOMPLETE, at)
        self._touch(sub, at)
        await self.repo.flush()
        await self._emit(sub, "subscription.incomplete", at, previous_status=previous.value, **data)
        return True

    async def complete(self, sub: Subscription, at: datetime, **data: Any) -> bool:
        """An incomplete subscription's first invoice was paid: it is `active` again (its periods did not
        move). Returns whether it changed."""
        if Status(sub.status) is not Status.INCOMPLETE:
            return False
        activated_at = sub.activated_at
        previous = transition(sub, Status.ACTIVE, at)
        sub.activated_at = activated_at
        self._touch(sub, at)
        await self.repo.flush()
        await self._emit(sub, "subscription.active", at, previous_status=previous.value, **data)
        return True

    # -- dunning (gateway/dunning drives these; the rules of each move are here) ------------------------
    async def mark_past_due(
        self,
        sub: Subscription,
        at: datetime,
        *,
        access: str | None = None,
        revoked_features: Sequence[str] | None = None,
        **data: Any,
    ) -> bool:
        """A renewal's payment failed: `past_due`, with what the dunning campaign leaves of access (None =
        keep, "read_only", "revoke"; features switched off). Only an active subscription moves; one
        already past due or unpaid stays as it is. Returns whether it changed."""
        if Status(sub.status) is not Status.ACTIVE:
            return False
        previous = transition(sub, Status.PAST_DUE, at)
        sub.dunning_access = access
        sub.dunning_revoked_features = list(revoked_features) if revoked_features else None
        self._touch(sub, at)
        await self.repo.flush()
        await self._emit(sub, "subscription.past_due", at, previous_status=previous.value, **data)
        return True

    async def mark_unpaid(self, sub: Subscription, at: datetime, **data: Any) -> bool:
        """Dunning ran out with the final action `unpaid`: kept, no access, until paid."""
        if Status(sub.status) is not Status.PAST_DUE:
            return False
        previous = transition(sub, Status.UNPAID, at)
        sub.dunning_access = sub.dunning_revoked_features = None
        self._touch(sub, at)
        await self.repo.flush()
        await self._emit(sub, "subscription.unpaid", at, previous_status=previous.value, **data)
        return True

    async def recover(self, sub: Subscription, at: datetime, **data: Any) -> bool:
        """The invoice that put it in dunning was paid: a past-due or unpaid subscription is `active`
        again, with all of its access (its periods never stopped). Returns whether it changed."""
        if Status(sub.status) not in (Status.PAST_DUE, Status.UNPAID):
            return False
        activated_at = sub.activated_at
        previous = transition(sub, Status.ACTIVE, at)
        sub.activated_at = activated_at
        sub.dunning_access = sub.dunning_revoked_features = None
        self._touch(sub, at)
        await self.repo.flush()
        await self._emit(sub, "subscription.active", at, previous_status=previous.value, **data)
        return True

    async def _end_trial(self, sub: Subscription, at: datetime) -> None:
        if sub.cancel_at_period_end:
            await self._end(sub, Status.CANCELED, at)
            return
        behavior = TrialEndBehavior(sub.trial_end_behavior)
        # Rule 17: a trial that would be charged automatically but has no usable payment method follows
        # its `trial_end_behavior` (cancel → expired, pause → paused, create_invoice → active, the
        # invoice then waits for a method or dunning). A send_invoice subscription needs no method.
        if behavior is not TrialEndBehavior.CREATE_INVOICE and await self._missing_payment_method(sub):
            if behavior is TrialEndBehavior.CANCEL:
                await self._end(sub, Status.EXPIRED, at, reason="missing_payment_method")
                return
            transition(sub, Status.PAUSED, at)
            self._touch(sub, at)
            await self.repo.flush()
            await self._emit(
                sub, "subscription.trial_ended", at, outcome="paused", reason="missing_payment_method"
            )
            return
        transition(sub, Status.ACTIVE, at)
        previous = await self._apply_scheduled_change(sub)
        # The first paid period starts at trial end; the anchor moves there (rule 15).
        self._start_paid_periods(sub, at, Interval(sub.interval), Alignment(sub.alignment))
        self._touch(sub, at)
        await self.repo.flush()
        if previous is not None:
            await self._emit(sub, "subscription.plan_changed", at, previous=previous, scheduled=True)
        await self._emit(sub, "subscription.trial_ended", at, outcome="active")

    async def _missing_payment_method(self, sub: Subscription) -> bool:
        if CollectionMethod(sub.collection_method) is CollectionMethod.SEND_INVOICE:
            return False
        return not await self.payment_methods.has_usable_default(sub.tenant_id)

    async def _apply_scheduled_change(self, sub: Subscription) -> dict[str, Any] | None:
        """Switch to the scheduled price (at the plan's then-current version); returns what it was."""
        if sub.scheduled_price_id is None:
            return None
        previous = {"price": sub.price_id, "plan_version": sub.plan_version_id, "quantity": sub.quantity}
        price = await self.catalog.get_price(sub.scheduled_price_id)
        plan_terms = await self.catalog.terms(price.plan_id)
        sub.plan_id, sub.plan_version_id, sub.price_id = plan_terms.plan.id, plan_terms.version.id, price.id
        sub.product_id = plan_terms.plan.product_id
        sub.quantity = sub.scheduled_quantity or sub.quantity
        sub.scheduled_price_id = sub.scheduled_quantity = sub.scheduled_change_at = None
        return previous

    async def _roll_over(self, sub: Subscription, at: datetime) -> None:
        if sub.cancel_at_period_end:
            await self._end(sub, Status.CANCELED, at)
            return
        closed = (sub.current_period_start, sub.current_period_end)
        previous = await self._apply_scheduled_change(sub)
        interval = Interval(sub.interval)
        sub.current_period_start = sub.current_period_end
        sub.current_period_end = period_end_after(
            sub.billing_cycle_anchor, interval, sub.current_period_start
        )
        self._touch(sub, at)
        await self.repo.flush()
        if previous is not None:
            await self._emit(sub, "subscription.plan_changed", at, previous=previous, scheduled=True)
        await self._emit(
            sub,
            "subscription.renewed",
            at,
            period_start=format_timestamp(sub.current_period_start),
            period_end=format_timestamp(sub.current_period_end),
            closed_period_start=format_timestamp(closed[0]),
            closed_period_end=format_timestamp(closed[1]),
        )


def _proration_behavior(value: str | None) -> str | None:
    """Validate a requested behaviour; None leaves the choice to billing (the plan's, then the default)."""
    if value is None:
        return None
    try:
        return ProrationBehavior(value).value
    except ValueError:
        raise ValidationFailed(f"unknown proration_behavior {value!r}", field="proration_behavior") from None


def check_precondition(sub: Subscription, if_match: IfMatch) -> None:
    """A conditional write applies only to the version the client last saw (412 otherwise)."""
    if if_match is not None and sub.version not in if_match:
        raise PreconditionFailed(
            f"the subscription is at version {sub.version}, not the one If-Match names; "
            "read it again and retry",
            current_version=sub.version,
        )


def _check_quantity(quantity: int) -> None:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise ValidationFailed(f"quantity must be between 1 and {MAX_QUANTITY}", field="quantity")


def _feedback(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return CancellationFeedback(value).value
    except ValueError:
        raise ValidationFailed(f"unknown cancellation feedback {value!r}", field="feedback") from None


def cancellation_details(sub: Subscription) -> dict[str, str | None]:
    """Why the subscription was canceled, as events carry it (Stripe's `cancellation_details`)."""
    return {
        "reason": sub.cancellation_reason,
        "feedback": sub.cancellation_feedback,
        "comment": sub.cancellation_comment,
    }


def snapshot(sub: Subscription) -> dict[str, Any]:
    """The subscription as events carry it (ISO timestamps; `version` lets consumers drop stale events)."""

    iso = isoformat_or_none

    return {
        "id": sub.id,
        "customer": sub.tenant_id,
        "status": sub.status,
        "plan": sub.plan_id,
        "plan_version": sub.plan_version_id,
        "price": sub.price_id,
        "quantity": sub.quantity,
        "currency": sub.currency,
        "current_period_start": iso(sub.current_period_start),
        "current_period_end": iso(sub.current_period_end),
        "trial_end": iso(sub.trial_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "collection_method": sub.collection_method,
        "days_until_due": sub.days_until_due,
        "version": sub.version,
    }
