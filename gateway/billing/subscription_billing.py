"""Subscriptions, billed: turns subscription events into invoices and pending proration items.

It is a `SubscriptionListener`: the subscription service hands it every event inside the transaction
that made the change, so a renewal and its invoice commit together or not at all.

- created (active) / trial ended (converted) → the first period's invoice, in advance;
- renewed → the new period in advance (licensed prices), the closed period's usage in arrears (metered
  prices), and whatever proration or one-time items are pending;
- plan, seat and add-on changes mid-period → proration lines (rules 10-12), pending or invoiced now per
  the proration behaviour (the request's, then the plan's `proration_behavior`, then the setting);
- an interval change → credit for the unused old period plus the whole new one, invoiced now (rule 13);
- canceled / expired → the last period's usage in arrears, if any.

`preview_*` methods compute the same lines without writing anything (rule 14).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from gateway.billing.discounts import Coupon
from gateway.billing.domain import BillingReason, DraftLine, InvoiceTotals, LineKind
from gateway.billing.metered import MeteredItem, MeteredPricing
from gateway.billing.metered_models import MeteredCharge
from gateway.billing.models import Invoice
from gateway.billing.proration import (
    ProrationLine,
    ProrationMode,
    interval_change_lines,
    plan_change_lines,
    price_change_lines,
    prorate,
)
from gateway.billing.rating import rate
from gateway.billing.repository import BillingRepository
from gateway.billing.service import InvoiceService
from gateway.catalog import CatalogService, price_terms
from gateway.catalog.domain import PriceTerms, PricingModel, UsageType
from gateway.catalog.models import Plan, Price
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.money import Money
from gateway.kernel.periods import Interval, add_months, period_containing, period_end_after
from gateway.subscriptions.domain import RUNNING_STATUSES, CollectionMethod, ProrationBehavior, Status
from gateway.subscriptions.models import Subscription, SubscriptionAddon

# Which discounts apply to an invoice of `sub` for the period starting at `period_start`.
CouponsFor = Callable[[Subscription, datetime], Awaitable[list[Coupon]]]
# Redeem a coupon or promotion code for a new subscription (the discount service).
RedeemFor = Callable[[Subscription, Customer, dict[str, Any], datetime], Awaitable[None]]
AddonsOf = Callable[[Subscription], Awaitable[Sequence[SubscriptionAddon]]]


@dataclass(frozen=True, slots=True)
class BillingSettings:
    proration_behavior: ProrationBehavior = ProrationBehavior.CREATE_PRORATIONS
    # NET: one line per change, rounded once (rule 10's +$6.67); ITEMIZED: Stripe's credit + charge pair.
    proration_mode: ProrationMode = ProrationMode.NET
    # Late usage of a period is billed (adjustment or credit note) this many days after the period ends.
    usage_adjustment_days: int = 35


@dataclass(frozen=True, slots=True)
class PricedItem:
    price: Price
    terms: PriceTerms
    plan: Plan


def _iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%b %d, %Y} - {end:%b %d, %Y}"


class SubscriptionBilling:
    def __init__(
        self,
        invoices: InvoiceService,
        catalog: CatalogService,
        customers: CustomerService,
        *,
        addons_of: AddonsOf,
        coupons_for: CouponsFor,
        redeem: RedeemFor | None = None,
        settings: BillingSettings | None = None,
        metered: MeteredPricing | None = None,
    ) -> None:
        self.invoices = invoices
        self.repo: BillingRepository = invoices.repo
        self.catalog = catalog
        self.customers = customers
        self.addons_of = addons_of
        self.coupons_for = coupons_for
        self.redeem = redeem
        self.settings = settings or BillingSettings()
        # Metered prices that read a meter (overage, usage credits, late adjustments); None = reported
        # quantities only.
        self.metered = metered
        # Per unit of work: a billing run renews hundreds of subscriptions on a handful of prices.
        self._prices: dict[str, PricedItem] = {}
        self._batch_customers: dict[str, Customer] = {}

    async def priced(self, price_id: str) -> PricedItem:
        cached = self._prices.get(price_id)
        if cached is None:
            price = await self.catalog.get_price(price_id)
            plan = await self.catalog.get_plan(price.plan_id)
            cached = self._prices[price_id] = PricedItem(price, price_terms(price), plan)
        return cached

    # -- the listener ----------------------------------------------------------------------------
    async def before_batch(self, subs: Sequence[Subscription]) -> None:
        """A billing-run batch: read what its renewals need in a few queries, and let finalisation
        (numbering) wait for the end of the batch."""
        # Held for the batch: the session's identity map only keeps weak references to clean rows.
        self._batch_customers = await self.customers.load_many([s.tenant_id for s in subs])
        await self.repo.prefetch([(s.tenant_id, s.id, s.current_period_start) for s in subs])
        self.invoices.begin_batch()

    async def after_batch(self) -> None:
        await self.invoices.end_batch()
        self.repo.forget_prefetch()
        self._batch_customers = {}

    async def on_clock_advanced(self, test_clock_id: str, to: datetime) -> int:
        """A test clock moved to `to`: its customers' send_invoice invoices that fell due meanwhile
        become overdue, each at its due instant, and the late usage of its ended subscriptions is billed
        (the wall clock's are swept by the billing run)."""
        marked = 0
        while swept := await self.invoices.mark_overdue(to, test_clock_id=test_clock_id):
            marked += swept
        # Late usage of its ended subscriptions (the wall clock's: the billing run, hourly).
        after: str | None = ""
        while after is not None:
            made, after = await self.bill_late_usage(to, test_clock_id=test_clock_id, after=after)
            marked += made
        return marked

    async def bill_late_usage(
        self, at: datetime, *, test_clock_id: str | None, after: str = "", limit: int = 200
    ) -> tuple[int, str | None]:
        """Late usage of subscriptions that have ended. A running subscription's next invoice carries it
        (`invoice_period`); an ended one has no next invoice, so within the adjustment window its
        invoiced periods are recomputed here: usage that grew is billed on an invoice of its own
        (`usage_adjustment`), usage that shrank is credited on the invoice that billed it. A rerun finds
        nothing (the remembered charges move with the invoice, in the same transaction), and each
        subscription is claimed with SKIP LOCKED, so two runs never bill one twice. Pages by id: returns
        the invoices made and the last subscription looked at (None: no more)."""
        if self.metered is None:
            return 0, None
        since = at - timedelta(days=self.settings.usage_adjustment_days)
        clock = (
            Subscription.test_clock_id.is_(None)
            if test_clock_id is None
            else Subscription.test_clock_id == test_clock_id
        )
        ended = select(Subscription).where(
            clock,
            Subscription.id > after,
            Subscription.ended_at.is_not(None),
            Subscription.id.in_(
                select(MeteredCharge.subscription_id).where(MeteredCharge.period_end >= since)
            ),
        )
        subs = (
            await self.repo.session.scalars(
                ended.order_by(Subscription.id).limit(limit).with_for_update(skip_locked=True)
            )
        ).all()
        made = 0
        for sub in subs:
            assert sub.ended_at is not None
            late, lowered = await self.metered.late_changes(sub, sub.ended_at, at, self._metered_item)
            if late:
                customer = await self.customers.get(sub.tenant_id)
                spans = [(line.period_start or at, line.period_end or at) for line in late]
                await self._invoice_now(
                    sub,
                    customer,
                    late,
                    at,
                    BillingReason.USAGE_ADJUSTMENT,
                    period=(min(start for start, _ in spans), max(end for _, end in spans)),
                    period_key=None,
                )
                made += 1
            self._metered_billed_on(None)
            await self._credit_lowered(lowered, at)
        return made, (subs[-1].id if len(subs) == limit else None)

    async def on_event(self, sub: Subscription, event_type: str, at: datetime, data: dict[str, Any]) -> None:
        handler = _HANDLERS.get(event_type)
        if handler is not None:
            await handler(self, sub, at, data)

    async def _created(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        customer = await self.customers.get(sub.tenant_id)
        if data.get("discount"):
            if self.redeem is None:
                raise ValidationFailed("coupons are not available here", field="coupon")
            await self.redeem(sub, customer, data["discount"], at)
        if Status(sub.status) is Status.ACTIVE:
            await self.invoice_period(sub, at, BillingReason.SUBSCRIPTION_CREATE, customer=customer)

    async def _trial_ended(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        if data.get("outcome") == "active":
            await self.invoice_period(sub, at, BillingReason.SUBSCRIPTION_CREATE)

    async def _renewed(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        closed = (_iso(data["closed_period_start"]), _iso(data["closed_period_end"]))
        await self.invoice_period(sub, at, BillingReason.SUBSCRIPTION_CYCLE, arrears=closed)

    async def _resumed(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        # Anchor "now" starts a full new period; "unchanged" bills what is left of the current one.
        from_at = at if data.get("billing_cycle_anchor") == "unchanged" else None
        await self.invoice_period(sub, at, BillingReason.SUBSCRIPTION_CYCLE, from_at=from_at)

    async def _incomplete_expired(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        """The first invoice stayed unpaid for the whole window: the subscription never started, so its
        open invoices are voided (as Stripe does): nobody is asked, collected or dunned for it again."""
        for invoice in await self.repo.list_invoices(
            after=None, limit=100, scope=sub.tenant_id, subscription_id=sub.id, status="open"
        ):
            await self.invoices.void(invoice, at)

    async def _ended(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        """The last period: its metered usage in arrears; with `prorate`, a credit for the unused paid
        time; with `invoice_now`, the pending items too. Billed at once when there is anything."""
        was_running = data.get("previous_status") in {s.value for s in RUNNING_STATUSES}
        if not was_running or sub.current_period_start >= at:
            return
        lines = await self.usage_lines(sub, sub.current_period_start, at, at=at, record=True)
        if data.get("prorate") and at < sub.current_period_end:
            for line in await self.advance_lines(sub, sub.current_period_start, sub.current_period_end):
                unused = prorate(line.amount, sub.current_period_start, sub.current_period_end, at)
                if unused.amount:
                    lines.append(
                        DraftLine(
                            kind=LineKind.PRORATION,
                            description=f"Unused time on {line.description.split(' (')[0]} after {at.date()}",
                            amount=-unused,
                            price_id=line.price_id,
                            period_start=at,
                            period_end=sub.current_period_end,
                            proration=True,
                        )
                    )
        lowered: list[Any] = []
        if self.metered is not None:
            # Late usage of the periods invoiced before this last one: this is their last invoice too.
            late, lowered = await self.metered.late_changes(
                sub, sub.current_period_start, at, self._metered_item
            )
            lines += late
        await self._credit_lowered(lowered, at)
        if not lines and not data.get("invoice_now"):
            self._metered_billed_on(None)
            return
        customer = await self.customers.get(sub.tenant_id)
        pending, items = await self.invoices.pending_lines(customer, sub.currency, subscription_id=sub.id)
        if not lines and not pending:
            self._metered_billed_on(None)
            return
        final = await self._invoice_now(
            sub,
            customer,
            [*lines, *pending],
            at,
            BillingReason.SUBSCRIPTION_END,
            period=(sub.current_period_start, at),
            period_key=f"{sub.id}:{sub.current_period_start.isoformat()}:end",
            items=items,
        )
        self._metered_billed_on(final.id)

    async def _plan_changed(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        if data.get("scheduled") or Status(sub.status) not in RUNNING_STATUSES:
            return  # a scheduled change starts with a new period, billed in full by the renewal
        lines, behavior = await self.plan_change_lines(sub, at, data)
        if data.get("interval_changed"):
            # Rule 13: the new interval starts now and is invoiced now, whatever the behaviour.
            key = f"{sub.id}:{sub.current_period_start.isoformat()}"
            if await self.repo.invoice_by_period_key(key) is not None:
                # The old period began this very instant (a switch in the first second): its invoice
                # holds the plain key, so the new period's names its end too.
                key = f"{key}:{sub.current_period_end.isoformat()}"
            await self._invoice_change(
                sub,
                lines,
                at,
                period_key=key,
                period=(sub.current_period_start, sub.current_period_end),
            )
            return
        await self._place(sub, lines, at, behavior)

    async def _quantity_changed(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        if Status(sub.status) not in RUNNING_STATUSES:
            return
        lines = await self.quantity_change_lines(sub, at, int(data["previous_quantity"]), sub.quantity)
        await self._place(sub, lines, at, await self._behavior(sub, data))

    async def _addon_changed(self, sub: Subscription, at: datetime, data: dict[str, Any]) -> None:
        if Status(sub.status) not in RUNNING_STATUSES:
            return
        addon = data["addon"]
        lines = await self.addon_lines(
            sub, at, addon["price"], int(addon.get("quantity", 1)), added=data["_type"] == "added"
        )
        await self._place(sub, lines, at, await self._behavior(sub, data))

    # -- lines -----------------------------------------------------------------------------------
    async def advance_lines(
        self,
        sub: Subscription,
        start: datetime,
        end: datetime,
        *,
        from_at: datetime | None = None,
        price_id: str | None = None,
        quantity: int | None = None,
        anchor: datetime | None = None,
    ) -> list[DraftLine]:
        """Licensed prices (base and add-ons) for `[start, end)`, in advance. A period shorter than a
        whole interval (calendar alignment's first period, rule 2) or billed from `from_at` is prorated
        over the whole interval that contains it. `price_id`/`quantity`/`anchor` override the
        subscription's (a preview of the next period with a scheduled change applied)."""
        anchor = anchor or sub.billing_cycle_anchor
        parts: list[tuple[str, int, LineKind]] = [
            (price_id or sub.price_id, quantity or sub.quantity, LineKind.SUBSCRIPTION)
        ]
        parts += [(a.price_id, a.quantity, LineKind.ADDON) for a in await self.addons_of(sub)]
        lines = []
        for part_price, part_quantity, kind in parts:
            item = await self.priced(part_price)
            if item.terms.usage_type is UsageType.METERED:
                continue
            amount = rate(item.terms, sub.currency, part_quantity).money
            whole = _whole_period(anchor, item.terms.interval, start)
            bill_from = from_at or start
            if whole != (start, end) or bill_from != start:
                amount = prorate(amount, whole[0], whole[1], bill_from)
            lines.append(
                DraftLine(
                    kind=kind,
                    description=_describe(item, part_quantity, bill_from, end),
                    amount=amount,
                    quantity=part_quantity,
                    unit_amount=_unit_amount(item, sub.currency),
                    price_id=part_price,
                    period_start=bill_from,
                    period_end=end,
                )
            )
        return lines

    async def usage_lines(
        self,
        sub: Subscription,
        start: datetime,
        end: datetime,
        *,
        at: datetime | None = None,
        record: bool = False,
    ) -> list[DraftLine]:
        """Metered prices over the finished `[start, end)`, in arrears: prices with a meter from its
        usage beyond the included units and usage credits (gateway/billing/metered.py), the others from
        the reported quantities. `record` (invoicing, not a preview) draws the credits and remembers
        the charges for later adjustments."""
        lines = []
        if self.metered is not None:
            price_ids = [sub.price_id, *[a.price_id for a in await self.addons_of(sub)]]
            for price_id in dict.fromkeys(price_ids):
                item = await self.priced(price_id)
                if item.terms.usage_type is UsageType.METERED and item.price.meter:
                    lines += await self.metered.lines(
                        sub,
                        MeteredItem(item.price, item.terms, item.plan),
                        start,
                        end,
                        at=at or end,
                        record=record,
                    )
        for usage in await self.repo.usage_for_period(sub.id, start):
            item = await self.priced(usage.price_id)
            if item.price.meter and self.metered is not None:
                continue  # billed from its meter above
            rated = rate(item.terms, sub.currency, int(usage.quantity))
            if usage.quantity == 0 and rated.money.is_zero():
                continue
            lines.append(
                DraftLine(
                    kind=LineKind.USAGE,
                    description=f"{item.plan.name} usage: {usage.quantity} units ({_span(start, end)})",
                    amount=rated.money,
                    quantity=int(usage.quantity),
                    unit_amount=_unit_amount(item, sub.currency),
                    price_id=usage.price_id,
                    period_start=start,
                    period_end=end,
                )
            )
        return lines

    async def plan_change_lines(
        self, sub: Subscription, at: datetime, data: dict[str, Any]
    ) -> tuple[list[DraftLine], ProrationBehavior]:
        previous = data["previous"]
        old = await self.priced(previous["price"])
        new = await self.priced(sub.price_id)
        behavior = await self._behavior(sub, data)
        metered = UsageType.METERED in (old.terms.usage_type, new.terms.usage_type)
        if data.get("interval_changed"):
            old_amount = Money(0, sub.currency)
            if old.terms.usage_type is UsageType.LICENSED:
                old_amount = rate(old.terms, sub.currency, int(previous["quantity"])).money
            new_amount = Money(0, sub.currency)
            if new.terms.usage_type is UsageType.LICENSED:
                new_amount = rate(new.terms, sub.currency, sub.quantity).money
            lines = interval_change_lines(
                old_amount,
                new_amount,
                _iso(previous["period_start"]),
                _iso(previous["period_end"]),
                at,
                Interval(sub.interval),
                old_label=old.plan.name,
                new_label=new.plan.name,
            )
            if behavior is ProrationBehavior.NONE:
                lines = [line for line in lines if line.amount.amount > 0]
            return self._draft(lines, sub.price_id), behavior
        if metered or behavior is ProrationBehavior.NONE:
            return [], behavior
        lines = price_change_lines(
            old.terms,
            int(previous["quantity"]),
            new.terms,
            sub.quantity,
            sub.currency,
            sub.current_period_start,
            sub.current_period_end,
            at,
            mode=self.settings.proration_mode,
            old_label=_label(old, int(previous["quantity"])),
            new_label=_label(new, sub.quantity),
        )
        return self._draft(lines, sub.price_id), behavior

    async def quantity_change_lines(
        self, sub: Subscription, at: datetime, old_quantity: int, new_quantity: int
    ) -> list[DraftLine]:
        item = await self.priced(sub.price_id)
        if item.terms.usage_type is UsageType.METERED:
            return []
        lines = price_change_lines(
            item.terms,
            old_quantity,
            item.terms,
            new_quantity,
            sub.currency,
            sub.current_period_start,
            sub.current_period_end,
            at,
            mode=self.settings.proration_mode,
            old_label=_label(item, old_quantity),
            new_label=_label(item, new_quantity),
        )
        return self._draft(lines, sub.price_id)

    async def addon_lines(
        self, sub: Subscription, at: datetime, price_id: str, quantity: int, *, added: bool
    ) -> list[DraftLine]:
        item = await self.priced(price_id)
        if item.terms.usage_type is UsageType.METERED:
            return []
        amount = rate(item.terms, sub.currency, quantity).money
        zero = Money(0, sub.currency)
        lines = plan_change_lines(
            zero if added else amount,
            amount if added else zero,
            sub.current_period_start,
            sub.current_period_end,
            at,
            old_label="no add-on" if added else _label(item, quantity),
            new_label=_label(item, quantity) if added else "no add-on",
        )
        return self._draft(lines, price_id)

    @staticmethod
    def _draft(lines: Sequence[ProrationLine], price_id: str) -> list[DraftLine]:
        return [
            DraftLine(
                kind=LineKind.PRORATION,
                description=line.description,
                amount=line.amount,
                price_id=price_id,
                period_start=line.period_start,
                period_end=line.period_end,
                proration=True,
            )
            for line in lines
        ]

    async def _behavior(self, sub: Subscription, data: dict[str, Any]) -> ProrationBehavior:
        requested = data.get("proration_behavior")
        if requested:
            return ProrationBehavior(requested)
        plan = (await self.priced(sub.price_id)).plan
        if plan.proration_behavior:
            return ProrationBehavior(plan.proration_behavior)
        return self.settings.proration_behavior

    # -- invoices --------------------------------------------------------------------------------
    async def invoice_period(
        self,
        sub: Subscription,
        at: datetime,
        reason: BillingReason,
        *,
        arrears: tuple[datetime, datetime] | None = None,
        from_at: datetime | None = None,
        customer: Customer | None = None,
    ) -> Invoice | None:
        """The invoice of the current period: one per subscription period (`period_key` is unique, so
        a second worker or a rerun cannot bill it twice)."""
        start, end = sub.current_period_start, sub.current_period_end
        key = f"{sub.id}:{start.isoformat()}"
        if arrears is None:
            # Not a renewal (whose period is new by construction): a resume or a conversion may meet a
            # period that is invoiced already. The unique key is the backstop either way.
            existing = await self.repo.invoice_by_period_key(key)
            if existing is not None:
                return existing
        customer = customer or await self.customers.get(sub.tenant_id)
        lines = await self.advance_lines(sub, start, end, from_at=from_at)
        lowered: list[Any] = []
        if arrears is not None:
            lines += await self.usage_lines(sub, *arrears, at=at, record=True)
            if self.metered is not None:
                # Late usage of periods invoiced before: an adjustment here, or a credit note there.
                late, lowered = await self.metered.late_changes(sub, arrears[0], at, self._metered_item)
                lines += late
        pending, items = await self.invoices.pending_lines(customer, sub.currency, subscription_id=sub.id)
        if not lines and not pending:
            self._metered_billed_on(None)
            await self._credit_lowered(lowered, at)
            return None  # a metered-only period with no usage yet: nothing to bill
        invoice = await self._invoice_now(
            sub,
            customer,
            [*lines, *pending],
            at,
            reason,
            period=(from_at or start, end),
            period_key=key,
            items=items,
        )
        self._metered_billed_on(invoice.id)
        await self._credit_lowered(lowered, at)
        return invoice

    async def _metered_item(self, price_id: str) -> MeteredItem:
        item = await self.priced(price_id)
        return MeteredItem(item.price, item.terms, item.plan)

    def _metered_billed_on(self, invoice_id: str | None) -> None:
        if self.metered is not None:
            self.metered.billed_on(invoice_id)

    async def _credit_lowered(self, lowered: Sequence[Any], at: datetime) -> None:
        if self.metered is not None and lowered:
            await self.metered.credit_lowered(self.invoices, self.customers.get, lowered, at)

    async def _invoice_now(
        self,
        sub: Subscription,
        customer: Customer,
        lines: list[DraftLine],
        at: datetime,
        reason: BillingReason,
        *,
        period: tuple[datetime, datetime],
        period_key: str | None,
        items: Sequence[Any] = (),
    ) -> Invoice:
        coupons = await self.coupons_for(sub, sub.current_period_start)
        invoice = await self.invoices.create_draft(
            customer,
            sub.currency,
            lines,
            at=at,
            reason=reason,
            coupons=coupons,
            subscription_id=sub.id,
            period=period,
            period_key=period_key,
            items=items,
            collection_method=CollectionMethod(sub.collection_method),
            days_until_due=sub.days_until_due,
        )
        return await self.invoices.finalize(invoice, customer, at)

    async def _invoice_change(
        self,
        sub: Subscription,
        lines: list[DraftLine],
        at: datetime,
        *,
        period_key: str | None,
        period: tuple[datetime, datetime],
    ) -> Invoice | None:
        customer = await self.customers.get(sub.tenant_id)
        pending, items = await self.invoices.pending_lines(customer, sub.currency, subscription_id=sub.id)
        if not lines and not pending:
            return None
        return await self._invoice_now(
            sub,
            customer,
            [*lines, *pending],
            at,
            BillingReason.SUBSCRIPTION_UPDATE,
            period=period,
            period_key=period_key,
            items=items,
        )

    async def _place(
        self, sub: Subscription, lines: list[DraftLine], at: datetime, behavior: ProrationBehavior
    ) -> None:
        """Put proration lines where the behaviour says: pending items, or an invoice now."""
        if not lines or behavior is ProrationBehavior.NONE:
            return
        if behavior is ProrationBehavior.ALWAYS_INVOICE:
            await self._invoice_change(
                sub, lines, at, period_key=None, period=(sub.current_period_start, sub.current_period_end)
            )
            return
        customer = await self.customers.get(sub.tenant_id)
        for line in lines:
            await self.invoices.add_item(
                customer,
                currency=sub.currency,
                amount=line.amount.amount,
                description=line.description,
                at=at,
                kind=LineKind.PRORATION,
                subscription_id=sub.id,
                price_id=line.price_id,
                period=(line.period_start, line.period_end)
                if line.period_start and line.period_end
                else None,
                proration=True,
            )

    # -- previews (rule 14) ----------------------------------------------------------------------
    async def preview(
        self, sub: Subscription, lines: list[DraftLine], *, include_pending: bool
    ) -> InvoiceTotals:
        """Price `lines` (plus pending items when they would be invoiced with them) as an invoice of
        `sub` would, without writing anything."""
        customer = await self.customers.get(sub.tenant_id)
        if include_pending:
            pending, _ = await self.invoices.pending_lines(customer, sub.currency, subscription_id=sub.id)
            lines = [*lines, *pending]
        coupons = await self.coupons_for(sub, sub.current_period_start)
        return await self.invoices.price(customer, sub.currency, lines, coupons)

    async def upcoming(self, sub: Subscription) -> tuple[InvoiceTotals, tuple[datetime, datetime]]:
        """The next renewal invoice as it stands: the next period in advance, this period's usage so
        far in arrears, and the pending items."""
        if Status(sub.status) not in RUNNING_STATUSES and Status(sub.status) is not Status.TRIALING:
            raise Conflict(f"a {sub.status} subscription has no upcoming invoice", code="no_upcoming_invoice")
        start = sub.current_period_end
        # A trial's billing anchor is its end (rule 15), so both cases start a period there.
        end = period_end_after(sub.billing_cycle_anchor, Interval(sub.interval), start)
        lines = await self.advance_lines(
            sub,
            start,
            end,
            price_id=sub.scheduled_price_id,
            quantity=sub.scheduled_quantity,
        )
        if Status(sub.status) is not Status.TRIALING:
            lines += await self.usage_lines(sub, sub.current_period_start, sub.current_period_end)
        return await self.preview(sub, lines, include_pending=True), (start, end)


def _whole_period(anchor: datetime, interval: Interval, start: datetime) -> tuple[datetime, datetime]:
    """The whole interval a period starting at `start` belongs to. Before the anchor (calendar
    alignment's short first period, which ends on the anchor) that is the interval ending there."""
    if start < anchor:
        return add_months(anchor, -interval.months), anchor
    return period_containing(anchor, interval, start)


def _label(item: PricedItem, quantity: int) -> str:
    if item.terms.model is PricingModel.FLAT:
        return item.plan.name
    return f"{quantity} × {item.plan.name}"


def _describe(item: PricedItem, quantity: int, start: datetime, end: datetime) -> str:
    return f"{_label(item, quantity)} ({_span(start, end)})"


def _unit_amount(item: PricedItem, currency: str) -> Decimal | None:
    amounts = item.terms.amounts(currency)
    return amounts.unit_amount if not amounts.tiers else None


async def _addon_added(
    billing: SubscriptionBilling, sub: Subscription, at: datetime, data: dict[str, Any]
) -> None:
    await billing._addon_changed(sub, at, {**data, "_type": "added"})


async def _addon_removed(
    billing: SubscriptionBilling, sub: Subscription, at: datetime, data: dict[str, Any]
) -> None:
    await billing._addon_changed(sub, at, {**data, "_type": "removed"})


_Handler = Callable[[SubscriptionBilling, Subscription, datetime, dict[str, Any]], Awaitable[None]]
_HANDLERS: dict[str, _Handler] = {
    "subscription.created": SubscriptionBilling._created,
    "subscription.trial_ended": SubscriptionBilling._trial_ended,
    "subscription.renewed": SubscriptionBilling._renewed,
    "subscription.resumed": SubscriptionBilling._resumed,
    "subscription.plan_changed": SubscriptionBilling._plan_changed,
    "subscription.quantity_changed": SubscriptionBilling._quantity_changed,
    "subscription.addon_added": _addon_added,
    "subscription.addon_removed": _addon_removed,
    "subscription.canceled": SubscriptionBilling._ended,
    "subscription.expired": SubscriptionBilling._ended,
    "subscription.incomplete_expired": SubscriptionBilling._incomplete_expired,
}
