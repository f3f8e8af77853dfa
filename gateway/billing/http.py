"""Billing endpoints under /v1: invoices (and their HTML/PDF), invoice items, credit notes, customer
credit, usage reports, discounts, the upcoming invoice and change previews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing import schemas as s
from gateway.billing.domain import BillingReason, LineKind
from gateway.billing.models import Invoice, PeriodUsage
from gateway.billing.rating import rate
from gateway.billing.render import render_html, render_pdf
from gateway.billing.rendering import credit_note_document, document_of
from gateway.billing.wiring import BillingConfig, BillingServices, billing_services
from gateway.catalog import price_terms
from gateway.catalog.domain import UsageType
from gateway.db.session import Database
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.kernel.money import Money
from gateway.subscriptions.domain import CollectionMethod, collection_terms
from gateway.subscriptions.service import AddonInput
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.timestamps import parse_timestamp

READ = {"scope": "billing:read"}
WRITE = {"scope": "billing:write"}
# Previews are POSTs that change nothing: no idempotency record needed, no index nudge.
PREVIEW = {"scope": "billing:read", "read_only": True}


def provide_billing(
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
) -> BillingServices:
    return billing_services(session, clock, billing_config)


DEPENDENCIES = {"billing": Provide(provide_billing, sync_to_thread=False)}


async def _now(billing: BillingServices, test_clock_id: str | None) -> datetime:
    return await billing.subscriptions.now_for(test_clock_id)


async def _invoice_out(billing: BillingServices, row: Invoice) -> s.Invoice:
    return s.Invoice.of(row, await billing.invoices.lines(row))


class InvoiceController(Controller):
    path = "/invoices"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Invoice a customer's pending items now")
    async def create(
        self,
        data: JSONBody[s.InvoiceCreate],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Invoice:
        customer = await billing.customers.get(data.customer, scope=principal.tenant_id)
        currency = (data.currency or customer.currency or "").upper()
        if not currency:
            raise ValidationFailed("the customer has no currency yet: say which", field="currency")
        collection, days = collection_terms(
            data.collection_method, data.days_until_due, default_method=CollectionMethod.CHARGE_AUTOMATICALLY
        )
        at = await _now(billing, customer.test_clock_id)
        lines, items = await billing.invoices.pending_lines(customer, currency)
        if not lines:
            raise Conflict("the customer has no pending invoice items", code="nothing_to_invoice")
        invoice = await billing.invoices.create_draft(
            customer,
            currency,
            lines,
            at=at,
            reason=BillingReason.MANUAL,
            items=items,
            description=data.description,
            auto_advance=data.auto_advance,
            metadata=data.metadata,
            collection_method=collection,
            days_until_due=days,
        )
        if data.auto_advance:
            await billing.invoices.finalize(invoice, customer, at)
        return await _invoice_out(billing, invoice)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List invoices")
    async def list_(
        self,
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
        subscription: Annotated[str | None, QueryParameter(name="subscription", max_length=40)] = None,
        status: Annotated[str | None, QueryParameter(name="status", max_length=20)] = None,
    ) -> s.InvoiceList:
        result = await billing.invoices.list_invoices(
            after=page.after,
            limit=page.limit,
            scope=principal.tenant_id,
            customer_id=customer,
            subscription_id=subscription,
            status=status,
        )
        lines = await billing.invoices.repo.lines_of([r.id for r in result.items])
        by_invoice: dict[str, list[Any]] = {}
        for line in lines:
            by_invoice.setdefault(line.invoice_id, []).append(line)
        data = [s.Invoice.of(r, by_invoice.get(r.id, [])) for r in result.items]
        return s.InvoiceList(data, result.next_cursor is not None, result.next_cursor)

    @get("/{invoice_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve an invoice")
    async def retrieve(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Invoice:
        return await _invoice_out(billing, await billing.invoices.get(invoice_id, scope=principal.tenant_id))

    @get(
        "/{invoice_id:str}/html",
        opt=READ,
        responses=ERROR_RESPONSES,
        media_type="text/html",
        summary="The invoice as a printable HTML page",
    )
    async def html(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> str:
        invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id)
        return render_html(await _document(billing, invoice))

    @get(
        "/{invoice_id:str}/pdf",
        opt=READ,
        responses=ERROR_RESPONSES,
        media_type="application/pdf",
        summary="The invoice as a PDF",
    )
    async def pdf(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id)
        name = invoice.number or invoice.id
        return Response(
            render_pdf(await _document(billing, invoice)),
            media_type="application/pdf",
            headers={"content-disposition": f'inline; filename="{name}.pdf"'},
        )

    @post(
        "/{invoice_id:str}/finalize",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Finalise a draft: number it, apply customer credit, fix the currency",
    )
    async def finalize(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Invoice:
        invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id, for_update=True)
        customer = await billing.customers.get(invoice.tenant_id)
        await billing.invoices.finalize(invoice, customer, await _now(billing, invoice.test_clock_id))
        return await _invoice_out(billing, invoice)

    @post(
        "/{invoice_id:str}/void",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Void a finalised invoice (its credit goes back to the customer)",
    )
    async def void(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Invoice:
        invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id, for_update=True)
        await billing.invoices.void(invoice, await _now(billing, invoice.test_clock_id))
        return await _invoice_out(billing, invoice)

    @post(
        "/{invoice_id:str}/mark_uncollectible",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Write the invoice off",
    )
    async def mark_uncollectible(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Invoice:
        invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id, for_update=True)
        await billing.invoices.mark_uncollectible(invoice, await _now(billing, invoice.test_clock_id))
        return await _invoice_out(billing, invoice)

    @delete(
        "/{invoice_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=204,
        summary="Delete a draft (its items become pending again)",
    )
    async def delete_draft(
        self,
        invoice_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> None:
        invoice = await billing.invoices.get(invoice_id, scope=principal.tenant_id, for_update=True)
        await billing.invoices.delete_draft(invoice, await _now(billing, invoice.test_clock_id))


async def _document(billing: BillingServices, invoice: Invoice) -> Any:
    customer = await billing.customers.get(invoice.tenant_id)
    return document_of(invoice, await billing.invoices.lines(invoice), customer, billing.invoices.issuer)


class InvoiceItemController(Controller):
    path = "/invoice_items"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Add a one-time charge or credit")
    async def create(
        self,
        data: JSONBody[s.InvoiceItemCreate],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.InvoiceItem:
        customer = await billing.customers.get(data.customer, scope=principal.tenant_id)
        if (data.amount is None) == (data.price is None):
            raise ValidationFailed("give either an amount or a price", field="amount")
        subscription_id = None
        if data.subscription is not None:
            sub = await billing.subscriptions.get(data.subscription, scope=principal.tenant_id)
            if sub.tenant_id != customer.id:
                raise ValidationFailed("the subscription belongs to another customer", field="subscription")
            subscription_id = sub.id
        at = await _now(billing, customer.test_clock_id)
        currency = (data.currency or customer.currency or "").upper()
        if data.price is not None:
            price = await billing.catalog.get_price(data.price)
            currency = currency or (
                next(iter(price.currency_options)) if len(price.currency_options) == 1 else ""
            )
            if not currency:
                raise ValidationFailed("say which currency", field="currency")
            terms = price_terms(price)
            plan = await billing.catalog.get_plan(price.plan_id)
            amount = rate(terms, currency, data.quantity).money.amount
            description = data.description or f"{data.quantity} × {plan.name}"
            unit, price_id = terms.amounts(currency).unit_amount, price.id
        else:
            assert data.amount is not None
            if not currency:
                raise ValidationFailed("say which currency", field="currency")
            if not data.description:
                raise ValidationFailed("a one-time charge needs a description", field="description")
            amount, description, unit, price_id = data.amount, data.description, None, None
        item = await billing.invoices.add_item(
            customer,
            currency=currency,
            amount=amount,
            description=description,
            at=at,
            kind=LineKind.ONE_TIME,
            subscription_id=subscription_id,
            price_id=price_id,
            quantity=data.quantity if data.price else None,
            unit_amount=unit,
            discountable=data.discountable,
            metadata=data.metadata,
        )
        if data.invoice is not None:
            await billing.invoices.attach_item(item, data.invoice, scope=principal.tenant_id)
        return s.InvoiceItem.of(item)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List invoice items")
    async def list_(
        self,
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
        pending: Annotated[bool | None, QueryParameter(name="pending")] = None,
    ) -> s.InvoiceItemList:
        result = await billing.invoices.list_items(
            after=page.after,
            limit=page.limit,
            scope=principal.tenant_id,
            customer_id=customer,
            pending=pending,
        )
        data = [s.InvoiceItem.of(r) for r in result.items]
        return s.InvoiceItemList(data, result.next_cursor is not None, result.next_cursor)

    @get("/{item_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve an invoice item")
    async def retrieve(
        self,
        item_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.InvoiceItem:
        return s.InvoiceItem.of(await billing.invoices.get_item(item_id, scope=principal.tenant_id))

    @delete(
        "/{item_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Delete a pending invoice item",
    )
    async def delete_item(
        self,
        item_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.InvoiceItem:
        item = await billing.invoices.get_item(item_id, scope=principal.tenant_id)
        customer = await billing.customers.get(item.tenant_id)
        await billing.invoices.delete_item(item, await _now(billing, customer.test_clock_id))
        return s.InvoiceItem.of(item)


class CreditNoteController(Controller):
    path = "/credit_notes"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Credit all or part of a finalised invoice")
    async def create(
        self,
        data: JSONBody[s.CreditNoteCreate],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.CreditNote:
        invoice = await billing.invoices.get(data.invoice, scope=principal.tenant_id, for_update=True)
        customer = await billing.customers.get(invoice.tenant_id)
        note = await billing.invoices.create_credit_note(
            invoice,
            customer,
            at=await _now(billing, invoice.test_clock_id),
            amount=data.amount,
            lines=[(line.invoice_line, line.amount) for line in data.lines],
            reason=data.reason,
            memo=data.memo,
            out_of_band=data.out_of_band,
        )
        return s.CreditNote.of(note)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List credit notes")
    async def list_(
        self,
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        invoice: Annotated[str | None, QueryParameter(name="invoice", max_length=40)] = None,
    ) -> s.CreditNoteList:
        result = await billing.invoices.list_credit_notes(
            after=page.after, limit=page.limit, scope=principal.tenant_id, invoice_id=invoice
        )
        data = [s.CreditNote.of(r) for r in result.items]
        return s.CreditNoteList(data, result.next_cursor is not None, result.next_cursor)

    @get("/{credit_note_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a credit note")
    async def retrieve(
        self,
        credit_note_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.CreditNote:
        return s.CreditNote.of(
            await billing.invoices.get_credit_note(credit_note_id, scope=principal.tenant_id)
        )

    @get(
        "/{credit_note_id:str}/html",
        opt=READ,
        responses=ERROR_RESPONSES,
        media_type="text/html",
        summary="The credit note as a printable HTML page, in the customer's language",
    )
    async def html(
        self,
        credit_note_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> str:
        return render_html(await _credit_note_document(billing, credit_note_id, principal))

    @get(
        "/{credit_note_id:str}/pdf",
        opt=READ,
        responses=ERROR_RESPONSES,
        media_type="application/pdf",
        summary="The credit note as a PDF, in the customer's language",
    )
    async def pdf(
        self,
        credit_note_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> Response[bytes]:
        doc = await _credit_note_document(billing, credit_note_id, principal)
        return Response(
            render_pdf(doc),
            media_type="application/pdf",
            headers={"content-disposition": f'inline; filename="{doc.number}.pdf"'},
        )


async def _credit_note_document(billing: BillingServices, credit_note_id: str, principal: Principal) -> Any:
    note = await billing.invoices.get_credit_note(credit_note_id[:40], scope=principal.tenant_id)
    invoice = await billing.invoices.get(note.invoice_id, scope=None)
    customer = await billing.customers.get(invoice.tenant_id)
    lines = await billing.invoices.lines(invoice)
    return credit_note_document(note, invoice, lines, customer, billing.invoices.issuer)


class CustomerBillingController(Controller):
    path = "/customers/{customer_id:str}"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @get("/balance", opt=READ, responses=ERROR_RESPONSES, summary="The customer's credit balance")
    async def balance(
        self,
        customer_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Balance:
        customer = await billing.customers.get(customer_id, scope=principal.tenant_id)
        available, grants = await billing.invoices.balance(
            customer, await _now(billing, customer.test_clock_id)
        )
        return s.Balance("customer_balance", customer.id, available, [s.CreditGrant.of(g) for g in grants])

    @post("/credit_grants", opt=WRITE, responses=ERROR_RESPONSES, summary="Grant the customer credit")
    async def grant(
        self,
        customer_id: FromPath[str],
        data: JSONBody[s.CreditGrantCreate],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.CreditGrant:
        customer = await billing.customers.get(customer_id, scope=principal.tenant_id)
        grant = await billing.invoices.grant_credit(
            customer,
            Money(data.amount, data.currency.upper()),
            at=await _now(billing, customer.test_clock_id),
            description=data.description,
            priority=data.priority,
            expires_at=parse_timestamp(data.expires_at, "expires_at"),
        )
        return s.CreditGrant.of(grant)

    @post(
        "/discounts",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Apply a coupon to every invoice of the customer",
    )
    async def discount(
        self,
        customer_id: FromPath[str],
        data: JSONBody[s.DiscountCreate],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Discount:
        customer = await billing.customers.get(customer_id, scope=principal.tenant_id)
        row = await billing.discounts.redeem(
            customer=customer,
            subscription=None,
            coupon=data.coupon,
            promotion_code=data.promotion_code,
            at=await _now(billing, customer.test_clock_id),
        )
        return s.Discount.of(row)


class SubscriptionBillingController(Controller):
    path = "/subscriptions/{subscription_id:str}"
    tags = ["billing"]
    dependencies = DEPENDENCIES

    @post(
        "/usage",
        opt={"scope": "subscriptions:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Report a metered price's usage for the current period",
    )
    async def report_usage(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.UsageReport],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Usage:
        sub = await billing.subscriptions.get(subscription_id, scope=principal.tenant_id, for_update=True)
        at = await _now(billing, sub.test_clock_id)
        metered = []
        for price_id in [sub.price_id, *[a.price_id for a in await billing.subscriptions.addons(sub)]]:
            if price_terms(await billing.catalog.get_price(price_id)).usage_type is UsageType.METERED:
                metered.append(price_id)
        if data.price is not None:
            price_id = (await billing.catalog.get_price(data.price)).id
            if price_id not in metered:
                raise ValidationFailed(
                    "that price is not a metered price of this subscription", field="price"
                )
        elif len(metered) == 1:
            price_id = metered[0]
        else:
            raise ValidationFailed(
                "say which metered price" if metered else "the subscription has no metered price",
                field="price",
            )
        repo = billing.invoices.repo
        row = await repo.usage(sub.id, price_id, sub.current_period_start)
        if row is None:
            row = PeriodUsage(
                id=new_id("pu"),
                tenant_id=sub.tenant_id,
                subscription_id=sub.id,
                price_id=price_id,
                period_start=sub.current_period_start,
                period_end=sub.current_period_end,
                quantity=0,
                updated_at=at,
            )
            repo.add(row)
        row.quantity = data.quantity if data.action == "set" else row.quantity + data.quantity
        row.updated_at = at
        await repo.flush()
        return s.Usage.of(row)

    @get(
        "/usage",
        opt={"scope": "subscriptions:read"},
        responses=ERROR_RESPONSES,
        summary="Usage reported for the current period",
    )
    async def usage(
        self,
        subscription_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.UsageList:
        sub = await billing.subscriptions.get(subscription_id, scope=principal.tenant_id)
        rows = await billing.invoices.repo.usage_for_period(sub.id, sub.current_period_start)
        return s.UsageList([s.Usage.of(r) for r in rows])

    @post(
        "/discounts",
        opt={"scope": "subscriptions:write"},
        responses=ERROR_RESPONSES,
        summary="Apply a coupon or promotion code to the subscription",
    )
    async def discount(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.DiscountCreate],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Discount:
        sub = await billing.subscriptions.get(subscription_id, scope=principal.tenant_id, for_update=True)
        customer = await billing.customers.get(sub.tenant_id)
        row = await billing.discounts.redeem(
            customer=customer,
            subscription=sub,
            coupon=data.coupon,
            promotion_code=data.promotion_code,
            at=await _now(billing, sub.test_clock_id),
        )
        return s.Discount.of(row)

    @get(
        "/discounts",
        opt={"scope": "subscriptions:read"},
        responses=ERROR_RESPONSES,
        summary="Active discounts (the subscription's and the customer's)",
    )
    async def discounts(
        self,
        subscription_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.DiscountList:
        sub = await billing.subscriptions.get(subscription_id, scope=principal.tenant_id)
        rows = await billing.discounts.active(sub.tenant_id, sub.id)
        return s.DiscountList([s.Discount.of(r) for r in rows])

    @delete(
        "/discounts/{discount_id:str}",
        opt={"scope": "subscriptions:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Remove a discount",
    )
    async def remove_discount(
        self,
        subscription_id: FromPath[str],
        discount_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.Discount:
        sub = await billing.subscriptions.get(subscription_id, scope=principal.tenant_id)
        row = await billing.discounts.remove(
            discount_id, scope=sub.tenant_id, at=await _now(billing, sub.test_clock_id)
        )
        return s.Discount.of(row)

    @get(
        "/upcoming_invoice",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="The next renewal invoice as it stands now",
    )
    async def upcoming(
        self,
        subscription_id: FromPath[str],
        billing: NamedDependency[BillingServices],
        principal: NamedDependency[Principal],
    ) -> s.InvoicePreview:
        sub = await billing.subscriptions.get(subscription_id, scope=principal.tenant_id)
        totals, period = await billing.billing.upcoming(sub)
        return s.InvoicePreview.of(sub.tenant_id, sub.id, totals, period)

    @post(
        "/preview_change",
        opt=PREVIEW,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Exactly what a plan, seat or add-on change would bill now, without making it",
    )
    async def preview_change(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.ChangePreviewRequest],
        state: State,
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> s.ChangePreview:
        return await preview_change(state, clock, principal, subscription_id, data)


async def preview_change(
    state: State, clock: Clock, principal: Principal, subscription_id: str, data: s.ChangePreviewRequest
) -> s.ChangePreview:
    """Make the change for real in a transaction of its own, read what it billed, and roll it back:
    the preview runs the very code the change runs, so it cannot drift from it (rule 14)."""
    kinds = [data.price is not None, data.add_addon is not None, data.remove_addon is not None]
    if sum(kinds) > 1:
        raise ValidationFailed("preview one change at a time", field="price")
    if not any(kinds) and data.quantity is None:
        raise ValidationFailed("say what would change: price, quantity or an add-on", field="price")
    db: Database = state.db
    config: BillingConfig = state.billing_config
    async with db.sessionmaker() as session:
        try:
            billing = billing_services(session, clock, config)
            subs = billing.subscriptions
            sub = await subs.get(subscription_id, scope=principal.tenant_id, for_update=True)
            repo = billing.invoices.repo
            before_items = {i.id for i in await repo.pending_items(sub.tenant_id, sub.currency)}
            before_invoices = {
                i.id
                for i in await repo.list_invoices(
                    after=None, limit=10_000, scope=sub.tenant_id, subscription_id=sub.id
                )
            }
            if data.price is not None:
                sub = await subs.change_plan(
                    sub.id,
                    price=data.price,
                    quantity=data.quantity,
                    timing=data.timing,
                    proration_behavior=data.proration_behavior,
                    scope=principal.tenant_id,
                )
            elif data.add_addon is not None:
                await subs.add_addon(
                    sub.id,
                    AddonInput(data.add_addon, data.addon_quantity),
                    proration_behavior=data.proration_behavior,
                    scope=principal.tenant_id,
                )
            elif data.remove_addon is not None:
                await subs.remove_addon(
                    sub.id,
                    data.remove_addon,
                    proration_behavior=data.proration_behavior,
                    scope=principal.tenant_id,
                )
            else:
                assert data.quantity is not None
                sub = await subs.set_quantity(
                    sub.id,
                    data.quantity,
                    proration_behavior=data.proration_behavior,
                    scope=principal.tenant_id,
                )
            items = [
                i for i in await repo.pending_items(sub.tenant_id, sub.currency) if i.id not in before_items
            ]
            invoices = [
                i
                for i in await repo.list_invoices(
                    after=None, limit=10_000, scope=sub.tenant_id, subscription_id=sub.id
                )
                if i.id not in before_invoices
            ]
            invoice = await _invoice_out(billing, invoices[-1]) if invoices else None
            scheduled = (
                sub.scheduled_price_id is not None and data.price is not None and not invoice and not items
            )
            outcome = "invoice" if invoice else "pending" if items else "scheduled" if scheduled else "none"
            return s.ChangePreview(
                "change_preview",
                sub.id,
                outcome,  # type: ignore[arg-type]
                [s.InvoiceItem.of(i) for i in items],
                invoice,
                sub.scheduled_change_at if scheduled else await subs.now_for(sub.test_clock_id),
            )
        finally:
            await session.rollback()


CONTROLLERS = [
    InvoiceController,
    InvoiceItemController,
    CreditNoteController,
    CustomerBillingController,
    SubscriptionBillingController,
]
