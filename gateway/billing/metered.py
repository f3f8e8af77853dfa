"""Metered prices that read a meter: overage in arrears, prepaid usage credits, late-usage adjustments.

For a metered price with a `meter`, one period's charge is (gateway/metering/allowance.py):

    used     = the meter's total over the period (+ units consumed through /v1/check, as reconciled)
    included = the plan version's grant of the price's metered feature (add-ons stacked)
    credited = prepaid usage credits drawn for what the included units do not cover
    billed   = used − included − credited, rated with the price's own model (rating.py: per unit,
               package, graduated, volume), one line per meter, or per group with `usage_group_by`

Each charge is remembered (`MeteredCharge`, unique per subscription, price, group and period). When a
later invoice is made, the periods billed within the adjustment window are recomputed: more usage than
billed (a late event) becomes an adjustment line on that invoice; less (a voided event) a credit note on
the invoice that billed it. A finalised invoice is never changed.

Prices without a meter keep the reported quantities (`period_usage`, POST /subscriptions/{id}/usage).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select

from gateway.billing.domain import DraftLine, LineKind
from gateway.billing.metered_models import MeteredCharge
from gateway.billing.models import Invoice
from gateway.billing.rating import RatedAmount, rate
from gateway.catalog import CatalogService
from gateway.catalog.domain import PriceTerms
from gateway.catalog.models import Plan, Price
from gateway.customers.models import Customer
from gateway.kernel.ids import new_id
from gateway.kernel.money import Money
from gateway.metering.allowance import UsageSplit, allocate, live_at_close, split_usage
from gateway.metering.allowance_service import AllowanceService
from gateway.metering.ports import MeterUsage
from gateway.subscriptions.models import Subscription, SubscriptionAddon

if TYPE_CHECKING:
    from gateway.billing.service import InvoiceService

AddonsOf = Callable[[Subscription], Awaitable[Sequence[SubscriptionAddon]]]
# How long after a period's end late usage is still billed (as an adjustment or a credit note).
DEFAULT_ADJUSTMENT_WINDOW = timedelta(days=35)


@dataclass(frozen=True, slots=True)
class MeteredItem:
    price: Price
    terms: PriceTerms
    plan: Plan


@dataclass(frozen=True, slots=True)
class GroupCharge:
    group_key: str  # "" for the whole meter; "region=eu,model=m1" for a group
    used: int
    billable: int
    amount: Money
    unit_amount: Decimal | None


@dataclass(frozen=True, slots=True)
class PeriodCharge:
    used: int
    included: int
    credited: int
    groups: tuple[GroupCharge, ...]


def rate_overage(
    terms: PriceTerms, currency: str, used: int, included: int | None, credits: int
) -> tuple[UsageSplit, RatedAmount]:
    """One meter's period, ungrouped: what the included units and credits cover, and the rest rated
    with the price's own model. `charge` below does the same per group (`allocate`)."""
    split = split_usage(used, included, credits)
    return split, rate(terms, currency, split.overage)


def group_key(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


class MeteredPricing:
    """Reads meters and allowances for SubscriptionBilling; one per unit of work."""

    def __init__(
        self,
        catalog: CatalogService,
        meters: MeterUsage,
        allowances: AllowanceService,
        addons_of: AddonsOf,
        *,
        window: timedelta = DEFAULT_ADJUSTMENT_WINDOW,
    ) -> None:
        self.catalog = catalog
        self.meters = meters
        self.allowances = allowances
        self.addons_of = addons_of
        self.window = window
        self.session = allowances.session
        self._fresh: list[MeteredCharge] = []

    async def included(self, sub: Subscription, feature_key: str) -> int | None:
        """Units of `feature_key` the subscription's plan version and add-ons include per period
        (None = unlimited; 0 when nothing grants it), stacked as the decision index does."""
        total: int | None = 0
        parts = [(sub.plan_version_id, 1)] + [
            (a.plan_version_id, a.quantity) for a in await self.addons_of(sub)
        ]
        for version_id, times in parts:
            terms = await self.catalog.terms_by_version_id(version_id)
            for grant in terms.grants:
                if grant.feature_key != feature_key:
                    continue
                if grant.limit is None:
                    return None
                total = (total or 0) + grant.limit * times
        return total

    async def charge(
        self,
        sub: Subscription,
        item: MeteredItem,
        start: datetime,
        end: datetime,
        *,
        at: datetime,
        draw: bool,
    ) -> PeriodCharge:
        """The period's charge for a metered price with a meter. `draw` takes the credits it uses
        (invoicing); without it the credits are only looked at (previews)."""
        price = item.price
        assert price.meter is not None
        names = list(price.usage_group_by or [])
        used_by_group: dict[str, int] = {}
        if names:
            grouped = await self.meters.grouped(sub.tenant_id, price.meter, start, end, names)
            for values, value in grouped.items():
                key = group_key(names, values)
                used_by_group[key] = used_by_group.get(key, 0) + value
        else:
            used_by_group[""] = await self.meters.total(sub.tenant_id, price.meter, start, end)
        feature = price.metered_feature
        if feature is not None:
            reconciled = await self.allowances.period(sub.id, feature, start)
            if reconciled is not None and reconciled.consumed:
                # Check-time consumption carries no group: it is billed with the ungrouped remainder.
                blank = group_key(names, [""] * len(names)) if names else ""
                used_by_group[blank] = used_by_group.get(blank, 0) + reconciled.consumed
        used = sum(used_by_group.values())
        included = await self.included(sub, feature) if feature is not None else 0
        if included is None:
            return PeriodCharge(used, used, 0, ())
        need = max(0, used - included)
        credited = 0
        if feature is not None and need:
            if draw:
                credited = await self.allowances.draw_for_period(
                    sub.tenant_id, sub.id, feature, start, end, need, at=at
                )
            else:
                drawn = await self.allowances.drawn(sub.id, feature, start)
                lots = await self.allowances.available(sub.tenant_id, feature, end)
                credited = drawn + sum(lot.remaining for lot in live_at_close(lots, end))
        split = split_usage(used, included, min(credited, need))
        billable = allocate(used_by_group, split.included + split.credited)
        amounts = item.terms.amounts(sub.currency)
        unit = amounts.unit_amount if not amounts.tiers else None
        groups = tuple(
            GroupCharge(key, used_by_group[key], units, rate(item.terms, sub.currency, units).money, unit)
            for key, units in billable.items()
        )
        return PeriodCharge(used, split.included, split.credited, groups)

    async def lines(
        self,
        sub: Subscription,
        item: MeteredItem,
        start: datetime,
        end: datetime,
        *,
        at: datetime,
        record: bool,
    ) -> list[DraftLine]:
        """The period's invoice lines for the price (one per meter or group with a charge); with
        `record`, its charges are remembered for later adjustments."""
        charge = await self.charge(sub, item, start, end, at=at, draw=record)
        if record:
            for group in charge.groups:
                await self._remember(sub, item, start, end, charge, group, at)
        lines = []
        for group in charge.groups:
            if group.billable == 0 and group.amount.is_zero():
                continue
            lines.append(
                DraftLine(
                    kind=LineKind.USAGE,
                    description=_describe(item, charge, group, start, end),
                    amount=group.amount,
                    quantity=group.billable,
                    unit_amount=group.unit_amount,
                    price_id=item.price.id,
                    period_start=start,
                    period_end=end,
                )
            )
        return lines

    async def _remember(
        self,
        sub: Subscription,
        item: MeteredItem,
        start: datetime,
        end: datetime,
        charge: PeriodCharge,
        group: GroupCharge,
        at: datetime,
    ) -> None:
        row = await self._charge_row(sub.id, item.price.id, group.group_key, start)
        if row is not None:
            return  # billed already (a rerun): the unique row keeps the first
        row = MeteredCharge(
            id=new_id("mch"),
            tenant_id=sub.tenant_id,
            subscription_id=sub.id,
            price_id=item.price.id,
            meter=item.price.meter or "",
            group_key=group.group_key,
            period_start=start,
            period_end=end,
            currency=sub.currency,
            used=group.used,
            included=charge.included,
            credited=charge.credited,
            billed_quantity=group.billable,
            amount=group.amount.amount,
            invoice_id=None,
            created_at=at,
            updated_at=at,
        )
        self.session.add(row)
        self._fresh.append(row)

    def billed_on(self, invoice_id: str | None) -> None:
        """The invoice the charges remembered since the last call went on (None: nothing was due)."""
        for row in self._fresh:
            row.invoice_id = invoice_id
        self._fresh = []

    async def _charge_row(
        self, subscription_id: str, price_id: str, key: str, start: datetime
    ) -> MeteredCharge | None:
        return await self.session.scalar(
            select(MeteredCharge).where(
                MeteredCharge.subscription_id == subscription_id,
                MeteredCharge.price_id == price_id,
                MeteredCharge.group_key == key,
                MeteredCharge.period_start == start,
            )
        )

    async def late_changes(
        self,
        sub: Subscription,
        before: datetime,
        at: datetime,
        priced: Callable[[str], Awaitable[MeteredItem]],
    ) -> tuple[list[DraftLine], list[tuple[MeteredCharge, int]]]:
        """Recompute the periods billed before `before` within the window. Returns the adjustment lines
        for usage that grew, and (charge, amount) credits for usage that shrank (credit notes)."""
        query = select(MeteredCharge).where(
            MeteredCharge.subscription_id == sub.id,
            MeteredCharge.period_end <= before,
            MeteredCharge.period_end >= at - self.window,
        )
        rows = (
            await self.session.scalars(query.order_by(MeteredCharge.period_start, MeteredCharge.id))
        ).all()
        periods: dict[tuple[str, datetime], list[MeteredCharge]] = {}
        for row in rows:
            periods.setdefault((row.price_id, row.period_start), []).append(row)
        lines: list[DraftLine] = []
        credits: list[tuple[MeteredCharge, int]] = []
        for (price_id, start), billed in periods.items():
            item = await priced(price_id)
            if item.price.meter is None:
                continue
            end = billed[0].period_end
            charge = await self.charge(sub, item, start, end, at=at, draw=True)
            by_key = {row.group_key: row for row in billed}
            for group in charge.groups:
                known = by_key.get(group.group_key)
                if known is not None:
                    row = known
                else:
                    row = MeteredCharge(
                        id=new_id("mch"),
                        tenant_id=sub.tenant_id,
                        subscription_id=sub.id,
                        price_id=price_id,
                        meter=item.price.meter,
                        group_key=group.group_key,
                        period_start=start,
                        period_end=end,
                        currency=sub.currency,
                        used=0,
                        included=charge.included,
                        credited=0,
                        billed_quantity=0,
                        amount=0,
                        invoice_id=None,
                        created_at=at,
                        updated_at=at,
                    )
                    self.session.add(row)
                delta = group.amount.amount - row.amount
                units = group.billable - row.billed_quantity
                if delta > 0:
                    lines.append(
                        DraftLine(
                            kind=LineKind.USAGE,
                            description=_describe_adjustment(item, group, row, start, end),
                            amount=Money(delta, sub.currency),
                            quantity=units,
                            unit_amount=group.unit_amount,
                            price_id=price_id,
                            period_start=start,
                            period_end=end,
                        )
                    )
                elif delta < 0:
                    credits.append((row, -delta))
                if delta or group.used != row.used:
                    row.used = group.used
                    row.billed_quantity = group.billable
                    row.credited = charge.credited
                    row.amount = group.amount.amount
                    row.updated_at = at
        return lines, credits

    async def credit_lowered(
        self,
        invoices: InvoiceService,
        customer_of: Callable[[str], Awaitable[Customer]],
        credits: Sequence[tuple[MeteredCharge, int]],
        at: datetime,
    ) -> None:
        """A credit note on the invoice that billed each lowered charge (never a change to it)."""
        for row, amount in credits:
            if row.invoice_id is None:
                continue
            invoice = await self.session.get(Invoice, row.invoice_id)
            if invoice is None:
                continue
            customer = await customer_of(row.tenant_id)
            await invoices.create_credit_note(
                invoice,
                customer,
                at=at,
                amount=amount,
                reason="order_change",
                memo=f"Usage of {row.meter} {row.period_start:%Y-%m-%d} - {row.period_end:%Y-%m-%d} lowered "
                f"after invoicing",
            )


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%b %d, %Y} - {end:%b %d, %Y}"


def _label(item: MeteredItem, group: GroupCharge) -> str:
    name = item.price.nickname or item.plan.name
    return f"{name} [{group.group_key}]" if group.group_key else name


def _describe(
    item: MeteredItem, charge: PeriodCharge, group: GroupCharge, start: datetime, end: datetime
) -> str:
    free = []
    if charge.included:
        free.append(f"{charge.included:,} included")
    if charge.credited:
        free.append(f"{charge.credited:,} from usage credits")
    detail = f"{group.used:,} used" + (f", {', '.join(free)}" if free and not group.group_key else "")
    return f"{_label(item, group)} overage: {group.billable:,} units ({detail}) ({_span(start, end)})"


def _describe_adjustment(
    item: MeteredItem, group: GroupCharge, row: MeteredCharge, start: datetime, end: datetime
) -> str:
    return (
        f"{_label(item, group)} adjustment: late usage, {row.used:,} → {group.used:,} used, "
        f"{group.billable - row.billed_quantity:+,} units ({_span(start, end)})"
    )
