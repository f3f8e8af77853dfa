"""The portal's self-service actions (issue #13). Each one calls the service of the /v1 operation it
mirrors, scoped to the visitor's own customer, and is offered only when the portal configuration offers it
(`ActionNotOffered`, a 403 page, otherwise). A change that bills shows first exactly what it would charge
or credit: the API's `preview_change`, the change itself run in a transaction that is rolled back.

- `GET /portal/plan?price=` / `POST /portal/plan` (upgrade, downgrade, switch_interval): the plans offered,
  each marked upgrade (now, prorated), downgrade (at the period end) or a switch of interval with its
  saving; then the preview; then `SubscriptionService.change_plan` (as `POST /v1/subscriptions/{id}/
  plan_change`). A price the configuration does not offer is refused beside the choice, nothing changed.
- `GET /portal/seats?quantity=` / `POST /portal/seats` (change_seats): `set_quantity`, previewed.
- `GET /portal/addons?add=|remove=` / `POST /portal/addons` (addons): `add_addon` / `remove_addon`.
- `POST /portal/promotion_code` (promotion_code): `DiscountService.redeem` on the subscription.
- `POST /portal/pause`, `POST /portal/resume` (pause).
- `GET /portal/invoices/{id}/pdf`: the invoice's PDF; `POST /portal/invoices/{id}/pay`: charge an open
  invoice now with the default method, the customer present (a 3-D Secure page may follow; the way back,
  `GET /portal/invoices/{id}/payment_return`, asks the provider at once and says whether it went through).
- `GET|POST /portal/billing_details` (update_billing_details): name, e-mail, address, country, and a tax
  id (EU VAT or one of 15 national types, checked offline), each refused beside its field
  (`CustomerService.update`, as `PATCH /v1/customers/{id}`).
- `POST /portal/payment_methods` (update_billing_details): a setup session at the provider, then back to
  the portal; `POST /portal/payment_methods/{id}/default`: the method tried first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing import schemas as billing_schemas
from gateway.billing.http import preview_change
from gateway.billing.models import Invoice
from gateway.billing.render import render_pdf
from gateway.billing.rendering import document_of
from gateway.billing.wiring import BillingConfig, billing_services
from gateway.catalog import CatalogService, price_terms
from gateway.catalog.models import Plan, Price
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError, NotFound, ValidationFailed
from gateway.payments.domain import PaymentStatus
from gateway.payments.methods import MethodService
from gateway.payments.models import Payment
from gateway.payments.port import MethodType
from gateway.payments.repository import PaymentsRepository
from gateway.payments.runtime import PaymentsRuntime
from gateway.payments.service import PaymentService
from gateway.portal.config import ActionNotOffered
from gateway.portal.overview import interval_label
from gateway.portal.visitor import (
    Visitor,
    live_subscription,
    portal_page,
    visitor_before_own_transactions,
    visitor_of,
)
from gateway.subscriptions.domain import is_upgrade
from gateway.subscriptions.http import DEPENDENCIES
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.service import MAX_QUANTITY, AddonInput, SubscriptionService

PLAN_ACTIONS = ("upgrade", "downgrade", "switch_interval")
Ref = Annotated[str, QueryParameter(max_length=100)]


def error_text(gettext: Callable[..., str], error: DomainError) -> str:
    """A refusal in the page's language: the codes a customer meets here, else the service's own words."""
    known = {
        "portal_action_not_offered": gettext("This portal does not offer that change."),
        "no_change": gettext("That is what you have now."),
        "quantity_out_of_range": gettext("Choose between 1 and 1,000,000 seats."),
        "promotion_code_not_found": gettext("This promotion code does not exist."),
        "promotion_code_expired": gettext("This promotion code has expired."),
        "coupon_expired": gettext("This promotion code has expired."),
        "promotion_code_inactive": gettext("This promotion code can no longer be used."),
        "promotion_code_exhausted": gettext("This promotion code can no longer be used."),
        "invalid_subscription_state": gettext("Your subscription cannot make this change now."),
    }
    return known.get(error.error_code, error.detail)


def period_amount(price: Price, currency: str, quantity: int) -> int:
    """What one period of `price` costs at `quantity`, in minor units (before discounts and tax)."""
    terms = price_terms(price)
    per_period = terms.monthly_amount(currency, quantity) * terms.interval.months
    return int(per_period.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class PlanOption:
    ref: str  # the price's lookup key (else its id): what the form sends
    plan_name: str
    interval: str
    amount: int
    currency: str
    # upgrade | downgrade | switch_interval: the portal action it needs, and what the page says of it
    kind: str
    # For a yearly price beside a monthly one of the same plan: what a year saves, in percent.
    saving_percent: int | None


async def plan_options(catalog: CatalogService, sub: Subscription, visitor: Visitor) -> list[PlanOption]:
    """The prices this subscription may move to from the portal, in the catalog's order: active, in the
    subscription's currency, of a plan (not an add-on, not sales-priced) the configuration allows, with an
    action the configuration offers."""
    prices = (
        await catalog.list_prices(after=None, limit=200, plan_id=None, active=True, currency=sub.currency)
    ).items
    plans: dict[str, Plan] = {}
    for price in prices:
        if price.plan_id not in plans:
            plans[price.plan_id] = await catalog.get_plan(price.plan_id)
    current = await catalog.get_price(sub.price_id)
    current_plan = plans.get(sub.plan_id) or await catalog.get_plan(sub.plan_id)
    current_monthly = price_terms(current).monthly_amount(sub.currency, sub.quantity)
    monthly_of_plan = {
        p.plan_id: period_amount(p, sub.currency, sub.quantity)
        for p in prices
        if price_terms(p).interval.months == 1
    }
    options = []
    for price in prices:
        plan = plans[price.plan_id]
        if price.id == sub.price_id or plan.kind == "addon" or plan.custom_pricing:
            continue
        if not visitor.settings.allows_plan(plan.key):
            continue
        terms = price_terms(price)
        if plan.id == sub.plan_id:
            kind = "switch_interval"
        elif is_upgrade(
            current_monthly, terms.monthly_amount(sub.currency, sub.quantity), current_plan.rank, plan.rank
        ):
            kind = "upgrade"
        else:
            kind = "downgrade"
        if not visitor.settings.offers(kind):
            continue
        amount = period_amount(price, sub.currency, sub.quantity)
        saving = None
        monthly = monthly_of_plan.get(plan.id)
        if terms.interval.months == 12 and monthly:
            saving = int((Decimal(1) - Decimal(amount) / (12 * monthly)) * 100)
        options.append(
            PlanOption(
                price.lookup_key or price.id,
                plan.name,
                terms.interval.value,
                amount,
                sub.currency,
                kind,
                saving,
            )
        )
    return options


async def _preview(
    state: State, clock: Clock, visitor: Visitor, sub_id: str, change: billing_schemas.ChangePreviewRequest
) -> tuple[billing_schemas.ChangePreview | None, DomainError | None]:
    try:
        return await preview_change(state, clock, visitor.principal, sub_id, change), None
    except DomainError as refused:
        return None, refused


class PortalActions(Controller):
    path = "/"
    dependencies = DEPENDENCIES

    # ---- plan -----------------------------------------------------------------------------------------

    async def _plan_page(
        self,
        request: Request[Any, Any, Any],
        visitor: Visitor,
        subscriptions: SubscriptionService,
        chosen: str,
        preview: billing_schemas.ChangePreview | None,
        error: DomainError | None,
    ) -> Template:
        sub = await live_subscription(subscriptions, visitor)
        current = await subscriptions.catalog.get_price(sub.price_id)
        plan = await subscriptions.catalog.get_plan(sub.plan_id)
        return portal_page(
            request,
            visitor,
            "portal/portal_plan.html",
            {
                "sub": sub,
                "current_name": plan.name,
                "current_amount": period_amount(current, sub.currency, sub.quantity),
                "options": await plan_options(subscriptions.catalog, sub, visitor),
                "chosen": chosen,
                "preview": preview,
                "error": error,
                "error_text": error_text,
                "interval_label": interval_label,
            },
            status=422 if error else 200,
        )

    async def _chosen_option(
        self, visitor: Visitor, subscriptions: SubscriptionService, ref: str
    ) -> PlanOption:
        sub = await live_subscription(subscriptions, visitor)
        for option in await plan_options(subscriptions.catalog, sub, visitor):
            if option.ref == ref:
                return option
        raise ActionNotOffered("this portal does not offer that plan", field="price")

    @get("/plan", summary="Change plan: the plans offered, then the preview of the one chosen")
    async def plan_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
        price: Ref = "",
    ) -> Template:
        visitor = await visitor_before_own_transactions(request, state.db, clock)
        if not any(visitor.settings.offers(a) for a in PLAN_ACTIONS):
            visitor.settings.require("upgrade")
        preview, error = None, None
        if price:
            sub_id = await self._sub_id(state, clock, visitor)
            # The preview runs before this request's session reads anything (see visitor.py).
            preview, error = await _preview(
                state, clock, visitor, sub_id, billing_schemas.ChangePreviewRequest(price=price)
            )
            if error is None:
                try:
                    await self._chosen_option(visitor, subscriptions, price)
                except DomainError as refused:
                    preview, error = None, refused
        return await self._plan_page(request, visitor, subscriptions, price, preview, error)

    @post("/plan", summary="Change plan (after the preview)", status_code=303)
    async def change_plan(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any] | Template:
        visitor = await visitor_of(request, session, clock)
        price = str((await request.form()).get("price") or "")[:100]
        try:
            await self._chosen_option(visitor, subscriptions, price)
        except DomainError as refused:
            return await self._plan_page(request, visitor, subscriptions, price, None, refused)
        sub = await live_subscription(subscriptions, visitor)
        changed = await subscriptions.change_plan(sub.id, price=price, scope=visitor.customer.id)
        done = "plan_scheduled" if changed.scheduled_price_id else "plan_changed"
        return Redirect(f"/portal?done={done}", status_code=303)

    async def _sub_id(self, state: State, clock: Clock, visitor: Visitor) -> str:
        """The live subscription's id, read in a read-only transaction of its own (see visitor.py)."""
        async with state.db.unit_of_work(read_only=True) as session:
            billing = billing_services(session, clock, state.billing_config)
            return (await live_subscription(billing.subscriptions, visitor)).id

    # ---- seats ----------------------------------------------------------------------------------------

    @get("/seats", summary="Change seats: the preview of the new number")
    async def seats_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
        quantity: Annotated[str, QueryParameter(max_length=10)] = "",
    ) -> Template:
        visitor = await visitor_before_own_transactions(request, state.db, clock)
        visitor.settings.require("change_seats")
        preview, error = None, None
        if quantity:
            sub_id = await self._sub_id(state, clock, visitor)
            try:
                change = billing_schemas.ChangePreviewRequest(quantity=_seats(quantity))
            except DomainError as refused:
                error = refused
            else:
                preview, error = await _preview(state, clock, visitor, sub_id, change)
        return await self._seats_page(request, visitor, subscriptions, quantity, preview, error)

    async def _seats_page(
        self,
        request: Request[Any, Any, Any],
        visitor: Visitor,
        subscriptions: SubscriptionService,
        quantity: str,
        preview: billing_schemas.ChangePreview | None,
        error: DomainError | None,
    ) -> Template:
        sub = await live_subscription(subscriptions, visitor)
        return portal_page(
            request,
            visitor,
            "portal/portal_seats.html",
            {"sub": sub, "quantity": quantity, "preview": preview, "error": error, "error_text": error_text},
            status=422 if error else 200,
        )

    @post("/seats", summary="Change seats (after the preview)", status_code=303)
    async def change_seats(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any] | Template:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("change_seats")
        raw = str((await request.form()).get("quantity") or "")[:10]
        sub = await live_subscription(subscriptions, visitor)
        try:
            async with session.begin_nested():
                await subscriptions.set_quantity(sub.id, _seats(raw), scope=visitor.customer.id)
        except DomainError as refused:
            return await self._seats_page(request, visitor, subscriptions, raw, None, refused)
        return Redirect("/portal?done=seats_changed", status_code=303)

    # ---- add-ons --------------------------------------------------------------------------------------

    async def _addon_options(
        self, subscriptions: SubscriptionService, sub: Subscription
    ) -> tuple[list[tuple[str, str, int]], list[tuple[str, str, str]]]:
        """The add-ons that may be added (price ref, name, amount per period) and those the subscription
        has (its add-on id, which removing names, price ref, name)."""
        catalog = subscriptions.catalog
        plan = await catalog.get_plan(sub.plan_id)
        had = {a.price_id: a.id for a in await subscriptions.addons(sub) if a.removed_at is None}
        prices = (
            await catalog.list_prices(after=None, limit=200, plan_id=None, active=True, currency=sub.currency)
        ).items
        addable, current = [], []
        for price in prices:
            addon = await catalog.get_plan(price.plan_id)
            if addon.kind != "addon" or price_terms(price).interval.value != sub.interval:
                continue
            ref = price.lookup_key or price.id
            name = price.nickname or addon.name
            if price.id in had:
                current.append((had[price.id], ref, name))
            elif not addon.compatible_plans or plan.key in addon.compatible_plans:
                addable.append((ref, name, period_amount(price, sub.currency, 1)))
        return addable, current

    @get("/addons", summary="Add or remove an add-on: the preview")
    async def addons_form(
        self,
        request: Request[Any, Any, Any],
        state: State,
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
        add: Ref = "",
        remove: Ref = "",
    ) -> Template:
        visitor = await visitor_before_own_transactions(request, state.db, clock)
        visitor.settings.require("addons")
        preview, error = None, None
        if add or remove:
            sub_id = await self._sub_id(state, clock, visitor)
            change = (
                billing_schemas.ChangePreviewRequest(add_addon=add)
                if add
                else billing_schemas.ChangePreviewRequest(remove_addon=remove)
            )
            preview, error = await _preview(state, clock, visitor, sub_id, change)
        return await self._addons_page(request, visitor, subscriptions, add, remove, preview, error)

    async def _addons_page(
        self,
        request: Request[Any, Any, Any],
        visitor: Visitor,
        subscriptions: SubscriptionService,
        add: str,
        remove: str,
        preview: billing_schemas.ChangePreview | None,
        error: DomainError | None,
    ) -> Template:
        sub = await live_subscription(subscriptions, visitor)
        addable, current = await self._addon_options(subscriptions, sub)
        return portal_page(
            request,
            visitor,
            "portal/portal_addons.html",
            {
                "sub": sub,
                "addable": addable,
                "current": current,
                "add": add,
                "remove": remove,
                "preview": preview,
                "error": error,
                "error_text": error_text,
            },
            status=422 if error else 200,
        )

    @post("/addons", summary="Add or remove an add-on (after the preview)", status_code=303)
    async def change_addons(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any] | Template:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("addons")
        form = await request.form()
        add, remove = str(form.get("add") or "")[:100], str(form.get("remove") or "")[:100]
        sub = await live_subscription(subscriptions, visitor)
        try:
            async with session.begin_nested():
                if add:
                    await subscriptions.add_addon(sub.id, AddonInput(add, 1), scope=visitor.customer.id)
                else:
                    await subscriptions.remove_addon(sub.id, remove, scope=visitor.customer.id)
        except DomainError as refused:
            return await self._addons_page(request, visitor, subscriptions, add, remove, None, refused)
        return Redirect(f"/portal?done={'addon_added' if add else 'addon_removed'}", status_code=303)

    # ---- promotion code, pause, resume ----------------------------------------------------------------

    @post("/promotion_code", summary="Apply a promotion code to the subscription", status_code=303)
    async def promotion_code(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
        billing_config: NamedDependency[BillingConfig],
    ) -> Response[Any] | Template:
        from gateway.portal.http_portal import overview_page

        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("promotion_code")
        code = str((await request.form()).get("code") or "").strip()[:40]
        sub = await live_subscription(subscriptions, visitor)
        billing = billing_services(session, clock, billing_config)
        try:
            if not code:
                raise ValidationFailed("enter a code", code="promotion_code_not_found", field="code")
            async with session.begin_nested():
                await billing.discounts.redeem(
                    customer=visitor.customer,
                    subscription=sub,
                    coupon=None,
                    promotion_code=code,
                    at=await subscriptions.now_for(sub.test_clock_id),
                )
        except DomainError as refused:
            return await overview_page(request, session, clock, visitor, promo_error=refused, promo=code)
        return Redirect("/portal?done=promotion_applied", status_code=303)

    async def _pause_or_resume(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        clock: Clock,
        subscriptions: SubscriptionService,
        resume: bool,
    ) -> Response[Any]:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("pause")  # one action offers both
        sub = await live_subscription(subscriptions, visitor)
        if resume:
            await subscriptions.resume(sub.id, scope=visitor.customer.id)
        else:
            await subscriptions.pause(sub.id, scope=visitor.customer.id)
        return Redirect(f"/portal?done={'resumed' if resume else 'paused'}", status_code=303)

    @post("/pause", summary="Pause the subscription", status_code=303)
    async def pause(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any]:
        return await self._pause_or_resume(request, session, clock, subscriptions, resume=False)

    @post("/resume", summary="Resume a paused subscription", status_code=303)
    async def resume(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any]:
        return await self._pause_or_resume(request, session, clock, subscriptions, resume=True)

    # ---- invoices -------------------------------------------------------------------------------------

    @get("/invoices/{invoice_id:str}/pdf", summary="An invoice of the customer's as a PDF")
    async def invoice_pdf(
        self,
        request: Request[Any, Any, Any],
        invoice_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        billing_config: NamedDependency[BillingConfig],
    ) -> Response[bytes]:
        visitor = await visitor_of(request, session, clock)
        billing = billing_services(session, clock, billing_config)
        invoice = await billing.invoices.get(invoice_id[:40], scope=visitor.customer.id)
        if invoice.status == "draft":
            raise NotFound(f"no invoice {invoice_id[:40]!r}")  # a draft is not the customer's to see yet
        document = document_of(
            invoice, await billing.invoices.lines(invoice), visitor.customer, billing.invoices.issuer
        )
        return Response(
            render_pdf(document),
            media_type="application/pdf",
            headers={"content-disposition": f'attachment; filename="{invoice.number or invoice.id}.pdf"'},
        )

    @post("/invoices/{invoice_id:str}/pay", summary="Pay an open invoice now", status_code=303)
    async def pay_invoice(
        self,
        request: Request[Any, Any, Any],
        invoice_id: FromPath[str],
        state: State,
        clock: NamedDependency[Clock],
    ) -> Response[Any]:
        visitor = await visitor_before_own_transactions(request, state.db, clock)
        runtime: PaymentsRuntime = state.payments
        base = str(request.base_url).rstrip("/")
        try:
            payment = await runtime.collector(actor=visitor.actor).collect(
                invoice_id[:40],
                scope=visitor.customer.id,
                off_session=False,
                return_url=f"{base}/portal/invoices/{invoice_id[:40]}/payment_return",
            )
        except DomainError as refused:
            return Redirect(f"/portal?failed={refused.error_code}", status_code=303)
        if payment is not None and payment.status == "requires_action" and payment.action_url:
            return Redirect(payment.action_url, status_code=303)
        if payment is None or payment.status not in ("succeeded", "processing"):
            return Redirect("/portal?failed=payment_failed", status_code=303)
        return Redirect("/portal?done=paid", status_code=303)

    @get(
        "/invoices/{invoice_id:str}/payment_return",
        summary="Back from the provider's 3-D Secure page: where the invoice's payment stands",
    )
    async def payment_return(
        self,
        request: Request[Any, Any, Any],
        invoice_id: FromPath[str],
        state: State,
        clock: NamedDependency[Clock],
    ) -> Redirect:
        """The provider sends the customer here after its authentication page (its own query parameters
        differ per provider and are not trusted). The invoice's latest payment is asked about at the
        provider at once, so the overview says whether it went through, not "being processed" until the
        provider's webhook comes. Another customer's invoice is a 404, as everywhere in the portal."""
        visitor = await visitor_before_own_transactions(request, state.db, clock)
        runtime: PaymentsRuntime = state.payments
        async with state.db.unit_of_work() as session:
            invoice = await session.get(Invoice, invoice_id[:40])
            if invoice is None or invoice.tenant_id != visitor.customer.id:
                raise NotFound(f"no invoice {invoice_id[:40]!r}")
            payments = await PaymentsRepository(session).payments_of_invoice(invoice.id)
            latest = max(payments, key=lambda p: p.attempt).id if payments else None
        if latest is None:
            return Redirect("/portal?failed=payment_failed", status_code=303)
        await runtime.settle(latest, actor=visitor.actor)
        async with state.db.unit_of_work() as session:
            status = await session.scalar(select(Payment.status).where(Payment.id == latest))
        if status == PaymentStatus.SUCCEEDED.value:
            return Redirect("/portal?done=paid", status_code=303)
        if status in (PaymentStatus.FAILED.value, PaymentStatus.CANCELED.value):
            return Redirect("/portal?failed=authentication_failed", status_code=303)
        return Redirect("/portal?done=payment_returned", status_code=303)

    # ---- billing details and payment methods ----------------------------------------------------------

    @get("/billing_details", summary="Billing details and tax id")
    async def billing_details_form(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> Template:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("update_billing_details")
        return _details_page(request, visitor, _details_of(visitor), {})

    @post("/billing_details", summary="Save billing details and tax id", status_code=303)
    async def save_billing_details(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> Response[Any] | Template:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("update_billing_details")
        form = await request.form()
        values = {name: str(form.get(name) or "").strip()[:200] for name in DETAIL_FIELDS}
        values["tax_id_type"] = values["tax_id_type"] or "eu_vat"
        errors: dict[str, str] = {}
        if not values["name"]:
            errors["name"] = "name_missing"
        if not errors:
            changes: dict[str, Any] = {
                "name": values["name"],
                "email": values["email"] or None,
                "country": values["country"].upper() or None,
                "address": {k: values[k] for k in ("line1", "line2", "postal_code", "city")},
                "tax_ids": _tax_ids(visitor, values),
            }
            try:
                async with session.begin_nested():
                    await CustomerService(CustomerRepository(session), clock).update(
                        visitor.customer.id, changes, scope=visitor.customer.id
                    )
            except DomainError as refused:
                field = str(refused.extra.get("field") or "")
                errors[_form_field(field)] = refused.error_code
                await session.refresh(visitor.customer)
        if errors:
            return _details_page(request, visitor, values, errors, status=422)
        return Redirect("/portal?done=details_saved", status_code=303)

    @post("/payment_methods", summary="Add a payment method (at the payment provider)", status_code=303)
    async def add_payment_method(
        self,
        request: Request[Any, Any, Any],
        state: State,
        clock: NamedDependency[Clock],
    ) -> Response[Any]:
        visitor = await visitor_before_own_transactions(request, state.db, clock)
        visitor.settings.require("update_billing_details")
        runtime: PaymentsRuntime = state.payments
        base = str(request.base_url).rstrip("/")
        record = await runtime.method_calls(actor=visitor.actor).start_setup(
            visitor.customer.id,
            scope=visitor.customer.id,
            return_url=f"{base}/portal?done=method_added",
            method_types=(MethodType.CARD,),
        )
        return Redirect(record.url, status_code=303)

    @post(
        "/payment_methods/{method_id:str}/default",
        summary="Make a payment method the one tried first",
        status_code=303,
    )
    async def default_payment_method(
        self,
        request: Request[Any, Any, Any],
        method_id: FromPath[str],
        state: State,
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> Response[Any]:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("update_billing_details")
        runtime: PaymentsRuntime = state.payments
        core = PaymentService(session, clock, runtime.registry(), runtime.billing_config, runtime.settings)
        await MethodService(core).set_default(visitor.customer, method_id[:40])
        return Redirect("/portal?done=method_default", status_code=303)


DETAIL_FIELDS = ("name", "email", "line1", "line2", "postal_code", "city", "country", "tax_id_type", "tax_id")


def _tax_ids(visitor: Visitor, values: dict[str, str]) -> list[dict[str, str]]:
    """The form edits the customer's first tax id (as Stripe's portal shows one); any further ones the
    app set through the API are kept as they are."""
    kept = [{"type": t["type"], "value": t["value"]} for t in (visitor.customer.tax_ids or [])[1:]]
    shown = [{"type": values["tax_id_type"], "value": values["tax_id"]}] if values["tax_id"] else []
    return shown + kept


def _form_field(service_field: str) -> str:
    if service_field.startswith("tax_ids"):
        return "tax_id_type" if service_field.endswith(".type") else "tax_id"
    if service_field.startswith("address"):
        return "line1"
    return service_field if service_field in DETAIL_FIELDS else "name"


def _details_of(visitor: Visitor) -> dict[str, str]:
    customer = visitor.customer
    first = (customer.tax_ids or [{}])[0]
    values = {
        "name": customer.name or "",
        "email": customer.email or "",
        "country": customer.country or "",
        "tax_id_type": str(first.get("type") or "eu_vat"),
        "tax_id": str(first.get("value") or ""),
    }
    for key in ("line1", "line2", "postal_code", "city"):
        values[key] = getattr(customer, f"address_{key}") or ""
    return values


def _details_page(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    values: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
) -> Template:
    return portal_page(
        request,
        visitor,
        "portal/portal_details.html",
        {"values": values, "errors": errors},
        status=status,
    )


def _seats(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_QUANTITY:
        raise ValidationFailed(
            "enter a whole number of seats", code="quantity_out_of_range", field="quantity"
        )
    return int(raw)


ROUTES = [PortalActions]
