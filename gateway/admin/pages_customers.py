"""The console's customer pages (issue #14): search, one customer's page, and the staff actions on it.
Each page calls the service of the /v1 operation it mirrors and is that operation's row of the
permission matrix (same staff scope), so a staff member may do on the page exactly what the API allows.

- `GET /admin/customers?q=` (customers:read): the search box; with `HX-Request` only the results
  (`admin/customer_results.html`), the same search as `GET /v1/customers?q=`.
- `GET /admin/customers/{id}` (customers:read): the customer, subscriptions, credit balance, invoices and
  credit notes, members with the SSO connections and SCIM tokens, and the timeline
  (`gateway.admin.timeline`, as `GET /v1/customers/{id}/timeline`). Action forms show only when the
  member's role may use them.
- `POST /admin/customers/{id}/subscriptions/{sub}/cancel|pause` (subscriptions:write): cancel at the
  period end or pause, with `SubscriptionService.cancel`/`pause` (as `POST /v1/subscriptions/{id}/cancel`
  and `/pause`), audited as `admin.subscription_canceled`/`admin.subscription_paused`.
- `POST /admin/customers/{id}/invoices/{invoice}/credit_note` (billing:write): a credit note for an amount
  of a finalised invoice with `InvoiceService.create_credit_note`, as `POST /v1/credit_notes`.
- `GET|POST /admin/customers/{id}/subscriptions/{sub}/plan_change` (subscriptions:write): pick a price,
  see `preview_change` (the API's preview: the change run in a rolled-back transaction), then confirm
  with `SubscriptionService.change_plan` (as `POST /v1/subscriptions/{id}/plan_change`); audited.
- `POST /admin/customers/{id}/subscriptions/{sub}/extend_trial` (subscriptions:write): the trial's end
  moved by 1-365 days with `SubscriptionService.extend_trial` (as `POST /v1/subscriptions/{id}/
  extend_trial`), audited as `admin.trial_extended`.
- `POST /admin/customers/{id}/payments/{payment}/refund` (payments:write): all or part of a succeeded
  payment, with its credit note (`Refunds.refund`, as `POST /v1/payments/{id}/refund`), audited.
- `POST /admin/customers/{id}/emails/{message}/resend` (email:write): a copy of a sent or failed e-mail
  queued now (`resend_message`, as `POST /v1/email_messages/{id}/resend`), audited. The page lists the
  latest e-mails for roles that may read them, and the entitlements with their use (the snapshot of
  `GET /v1/entitlements/{customer}`).
- `POST /admin/customers/{id}/portal_session` (portal:write): a one-time portal link, shown on the page
  (`PortalSessionService.issue`, as `POST /v1/portal_sessions`).
- `POST /admin/customers/{id}/credit` (billing:write): grant credit with `InvoiceService.grant_credit`
  at the customer's time (a test clock's), as `POST /v1/customers/{id}/credit_grants`; the next invoice
  applies it. Written to the audit log (`admin.credit_granted`) with the staff member as actor.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.admin.models import StaffMember
from gateway.admin.staff import scope_allows
from gateway.admin.timeline import timeline
from gateway.audit.service import record
from gateway.billing import schemas as billing_schemas
from gateway.billing.http import preview_change
from gateway.billing.service import CurrencyLocked
from gateway.billing.wiring import BillingConfig, BillingServices, billing_services
from gateway.catalog.models import Plan
from gateway.entitlements.http import entitlements_snapshot
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock, isoformat_or_none
from gateway.kernel.errors import Conflict, DomainError, NotFound, ValidationFailed
from gateway.kernel.money import Money
from gateway.notifications.email_models import EmailMessage
from gateway.notifications.email_service import resend_message
from gateway.payments.repository import PaymentsRepository
from gateway.portal.session import PortalSessionService
from gateway.scim.service import ScimTokenService
from gateway.sso.http import provide_connections
from gateway.subscriptions.http import DEPENDENCIES as SUBSCRIPTION_DEPENDENCIES
from gateway.subscriptions.service import SubscriptionService
from gateway.webui.pages import render_page

SEARCH_LIMIT = 25
EMAILS_SHOWN = 10  # the customer's latest e-mails on its page
LIST_LIMIT = 50  # subscriptions, invoices, credit notes, members, timeline entries a page shows
Search = Annotated[str, QueryParameter(name="q", max_length=200)]


async def _role(session: AsyncSession, principal: Principal) -> str:
    """The signed-in staff member's role (the guard admitted them; the page only shows what it allows)."""
    member = await session.get(StaffMember, principal.key_id.removeprefix("staff:"))
    return member.role if member is not None else "read_only"


@get("/customers", summary="Search customers")
async def search_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    q: Search = "",
) -> Template:
    query = q.strip()
    found = []
    if query:
        billing = billing_services(session, clock, billing_config)
        found = list(
            (await billing.customers.list(after=None, limit=SEARCH_LIMIT, scope=None, q=query)).items
        )
    template = "admin/customer_results.html" if request.headers.get("hx-request") else "admin/customers.html"
    return render_page(request, template, {"q": query, "found": found}, package="admin")


async def _customer_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    billing: BillingServices,
    principal: Principal,
    customer_id: str,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    portal_link: str | None = None,
) -> Template:
    customer = await billing.customers.get(customer_id[:40])  # 404 for an unknown id
    now = await billing.subscriptions.now_for(customer.test_clock_id)
    subscriptions = (
        await billing.subscriptions.list(after=None, limit=LIST_LIMIT, scope=None, customer_id=customer.id)
    ).items
    plans = {s.plan_id: await session.get(Plan, s.plan_id) for s in subscriptions}
    invoices = (
        await billing.invoices.list_invoices(
            after=None, limit=LIST_LIMIT, scope=None, customer_id=customer.id
        )
    ).items
    credit_notes = (
        await billing.invoices.list_credit_notes(
            after=None, limit=LIST_LIMIT, scope=customer.id, invoice_id=None
        )
    ).items
    available, _grants = await billing.invoices.balance(customer, now)
    events = await timeline(session, customer.id, limit=LIST_LIMIT)
    # Members and the tenant's identity set-up, from the services of the members, SSO and SCIM APIs.
    members = (
        await billing.customers.list_members(customer.id, after=None, limit=LIST_LIMIT, include_removed=False)
    ).items
    connections = provide_connections(session, billing.customers.clock, request.app.state)
    sso = (await connections.list(scope=customer.id, after=None, limit=LIST_LIMIT)).items
    scim = (
        await ScimTokenService(session, billing.customers.clock).list(
            customer.id, after=None, limit=LIST_LIMIT
        )
    ).items
    role = await _role(session, principal)
    payments = [
        p
        for p in await PaymentsRepository(session).list_payments(
            after=None, limit=LIST_LIMIT, scope=customer.id, customer_id=customer.id
        )
        if p.status == "succeeded"
    ]
    snapshot = await entitlements_snapshot(request.app.state.engine, customer.id)
    emails: list[EmailMessage] = []
    if scope_allows(role, "email:read"):
        emails = list(
            (
                await session.scalars(
                    select(EmailMessage)
                    .where(EmailMessage.tenant_id == customer.id)
                    .order_by(EmailMessage.id.desc())
                    .limit(EMAILS_SHOWN)
                )
            ).all()
        )
    return render_page(
        request,
        "admin/customer.html",
        {
            "customer": customer,
            "subscriptions": subscriptions,
            "plans": plans,
            "invoices": invoices,
            "credit_notes": credit_notes,
            "balance": available,
            "timeline": events.entries,
            "members": members,
            "sso": sso,
            "scim": scim,
            "can_grant_credit": scope_allows(role, "billing:write"),
            "can_change_subscriptions": scope_allows(role, "subscriptions:write"),
            "can_open_portal": scope_allows(role, "portal:write"),
            "can_resend_email": scope_allows(role, "email:write"),
            "can_refund": scope_allows(role, "payments:write"),
            "payments": payments,
            "features": snapshot.features if snapshot else [],
            "emails": emails,
            "portal_link": portal_link,
            "values": values or {"currency": customer.currency or ""},
            "errors": errors or {},
            "granted": request.query_params.get("granted", "")[:40],
            "done": request.query_params.get("done", "")[:20],
        },
        package="admin",
        status_code=422 if errors else 200,
    )


@get("/customers/{customer_id:str}", summary="One customer: subscriptions, invoices, timeline")
async def customer_page(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    principal: NamedDependency[Principal],
) -> Template:
    billing = billing_services(session, clock, billing_config)
    return await _customer_page(request, session, billing, principal, customer_id)


def parse_amount(raw: str, field: str = "amount") -> int:
    """`10`, `10.5` or `10.50` (major units, as a person types them) → 1000, 1050 minor units."""
    whole, dot, cents = raw.strip().partition(".")
    if not whole.isdigit() or (dot and (not cents.isdigit() or len(cents) > 2)):
        raise ValidationFailed("an amount such as 10 or 10.50", field=field)
    minor = int(whole) * 100 + (int(cents.ljust(2, "0")) if cents else 0)
    if minor <= 0:
        raise ValidationFailed("an amount above zero", field=field)
    return minor


@post("/customers/{customer_id:str}/credit", summary="Grant the customer credit", status_code=303)
async def grant_credit(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    principal: NamedDependency[Principal],
) -> Template | Redirect:
    billing = billing_services(session, clock, billing_config)
    customer = await billing.customers.get(customer_id[:40])
    form = {k: str(v)[:100] for k, v in (await request.form()).items()}
    currency = (form.get("currency") or customer.currency or "").strip().upper()[:3]
    description = form.get("description", "").strip()[:100] or None
    try:
        amount = parse_amount(form.get("amount", ""))
        at = await billing.subscriptions.now_for(customer.test_clock_id)
        # The API's own service: its rules (positive, at most the maximum, the customer's currency) apply.
        grant = await billing.invoices.grant_credit(
            customer, Money(amount, currency), at=at, description=description
        )
    except (ValidationFailed, CurrencyLocked) as exc:
        field = str(exc.extra.get("field", "amount"))
        return await _customer_page(
            request, session, billing, principal, customer.id, values=form, errors={field: exc.detail}
        )
    return await audited_redirect(
        session,
        action="admin.credit_granted",
        at=at,
        customer=customer.id,
        target=grant.id,
        data={"amount": amount, "currency": currency},
        done=grant.id,
        query="granted",
    )


async def audited_redirect(
    session: AsyncSession,
    *,
    action: str,
    at: datetime,
    customer: str,
    target: str,
    data: dict[str, Any],
    done: str,
    query: str = "done",
) -> Redirect:
    """How every console action on a customer ends: its audit entry (in the action's own transaction;
    the unit of work names the staff member as actor), then back to the customer's page saying what
    was done (`?done=refunded`)."""
    await record(session, action=action, at=at, tenant_id=customer, target=target, data=data)
    return Redirect(f"/admin/customers/{customer}?{query}={done}", status_code=303)


async def _subscription_action(
    session: AsyncSession,
    subscriptions: SubscriptionService,
    customer_id: str,
    subscription_id: str,
    action: str,
) -> Redirect:
    """Pause or cancel (at the period end) one of the customer's subscriptions with the API's own service
    calls; `scope` is the customer, so another customer's subscription is a 404."""
    customer, sub = customer_id[:40], subscription_id[:40]
    if action == "cancel":
        row = await subscriptions.cancel(sub, at_period_end=True, reason="admin_console", scope=customer)
    else:
        row = await subscriptions.pause(sub, scope=customer)
    at = await subscriptions.now_for(row.test_clock_id)  # the customer's time (a test clock's)
    return await audited_redirect(
        session,
        action=f"admin.subscription_{'canceled' if action == 'cancel' else 'paused'}",
        at=at,
        customer=customer,
        target=row.id,
        data={"status": row.status, "cancel_at_period_end": row.cancel_at_period_end},
        done=action,
    )


@post(
    "/customers/{customer_id:str}/subscriptions/{subscription_id:str}/cancel",
    summary="Cancel a subscription at its period end",
    status_code=303,
    dependencies=SUBSCRIPTION_DEPENDENCIES,
)
async def cancel_subscription(
    customer_id: FromPath[str],
    subscription_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    subscriptions: NamedDependency[SubscriptionService],
) -> Redirect:
    return await _subscription_action(session, subscriptions, customer_id, subscription_id, "cancel")


@post(
    "/customers/{customer_id:str}/subscriptions/{subscription_id:str}/pause",
    summary="Pause a subscription",
    status_code=303,
    dependencies=SUBSCRIPTION_DEPENDENCIES,
)
async def pause_subscription(
    customer_id: FromPath[str],
    subscription_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    subscriptions: NamedDependency[SubscriptionService],
) -> Redirect:
    return await _subscription_action(session, subscriptions, customer_id, subscription_id, "pause")


@post(
    "/customers/{customer_id:str}/subscriptions/{subscription_id:str}/extend_trial",
    summary="Extend a trial by a number of days",
    status_code=303,
    dependencies=SUBSCRIPTION_DEPENDENCIES,
)
async def extend_trial(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    subscription_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    principal: NamedDependency[Principal],
    subscriptions: NamedDependency[SubscriptionService],
) -> Template | Redirect:
    """As `POST /v1/subscriptions/{id}/extend_trial {trial_end}`, the new end the current one plus the days
    asked for (1-365); bad input comes back beside the field, nothing changed."""
    customer = customer_id[:40]
    raw = str((await request.form()).get("days") or "").strip()[:6]
    sub = await subscriptions.get(subscription_id[:40], scope=customer)
    error = None
    if not raw.isdigit() or not 1 <= int(raw) <= 365:
        error = "days"
    elif sub.trial_end is None or sub.status != "trialing":
        error = "not_trialing"
    if error is not None:
        billing = billing_services(session, clock, billing_config)
        return await _customer_page(
            request, session, billing, principal, customer, values={"days": raw}, errors={"days": error}
        )
    assert sub.trial_end is not None
    previous = sub.trial_end
    row = await subscriptions.extend_trial(
        sub.id, trial_end=previous + timedelta(days=int(raw)), scope=customer
    )
    return await audited_redirect(
        session,
        action="admin.trial_extended",
        at=await subscriptions.now_for(row.test_clock_id),
        customer=customer,
        target=row.id,
        data={"days": int(raw), "trial_end": isoformat_or_none(row.trial_end)},
        done="trial_extended",
    )


@post(
    "/customers/{customer_id:str}/payments/{payment_id:str}/refund",
    summary="Refund all or part of one of the customer's payments",
    status_code=303,
)
async def refund_payment(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    payment_id: FromPath[str],
    state: State,
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    principal: NamedDependency[Principal],
) -> Template | Redirect:
    """As `POST /v1/payments/{id}/refund {amount}` (empty: all that is left), with its credit note. The
    refund runs in transactions of its own, before this request's session reads anything (SQLite's write
    lock, see gateway/portal/visitor.py); a refusal comes back beside the field."""
    customer = customer_id[:40]
    form = {k: str(v)[:100] for k, v in (await request.form()).items()}
    raw = form.get("refund_amount", "").strip()
    try:
        amount = parse_amount(raw, "refund_amount") if raw else None
        refund = await state.payments.refunds(actor=principal.key_id).refund(
            payment_id[:40], amount=amount, reason="requested_by_customer", scope=customer
        )
    except DomainError as exc:
        billing = billing_services(session, clock, billing_config)
        return await _customer_page(
            request,
            session,
            billing,
            principal,
            customer,
            values={"refund_amount": raw, "refund_payment": payment_id[:40]},
            errors={"refund_amount": exc.detail},
        )
    return await audited_redirect(
        session,
        action="admin.payment_refunded",
        at=clock.now(),
        customer=customer,
        target=refund.id,
        data={"payment": payment_id[:40], "amount": refund.amount, "status": refund.status},
        done="refunded",
    )


@post(
    "/customers/{customer_id:str}/emails/{message_id:str}/resend",
    summary="Send one of the customer's e-mails again",
    status_code=303,
)
async def resend_email(
    customer_id: FromPath[str],
    message_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
) -> Redirect:
    """As `POST /v1/email_messages/{id}/resend`: a copy queued now (refused for a suppressed address)."""
    customer = customer_id[:40]
    row = await session.get(EmailMessage, message_id[:40])
    if row is None or row.tenant_id != customer:
        raise NotFound(f"no e-mail message {message_id[:40]!r} of customer {customer!r}")
    copy = await resend_message(session, clock, row)
    return await audited_redirect(
        session,
        action="admin.email_resent",
        at=clock.now(),
        customer=customer,
        target=copy.id,
        data={"original": row.id, "template": row.template},
        done="email_resent",
    )


@post(
    "/customers/{customer_id:str}/invoices/{invoice_id:str}/credit_note",
    summary="Issue a credit note on one of the customer's invoices",
    status_code=303,
)
async def issue_credit_note(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    invoice_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    principal: NamedDependency[Principal],
) -> Template | Redirect:
    """As `POST /v1/credit_notes {invoice, amount}`: `InvoiceService.create_credit_note` credits the
    amount (tax included) to the invoice while it is open, to the customer's balance once paid."""
    billing = billing_services(session, clock, billing_config)
    customer = await billing.customers.get(customer_id[:40])
    invoice = await billing.invoices.get(invoice_id[:40], scope=customer.id, for_update=True)
    form = {k: str(v)[:100] for k, v in (await request.form()).items()}
    field = f"note_{invoice.id}"
    try:
        amount = parse_amount(form.get(field, ""), field=field)
        note = await billing.invoices.create_credit_note(
            invoice,
            customer,
            at=await billing.subscriptions.now_for(invoice.test_clock_id),
            amount=amount,
            lines=[],
            reason="order_change",
            memo=form.get("memo", "").strip()[:100] or None,
            out_of_band=False,
        )
    except (ValidationFailed, Conflict) as exc:
        return await _customer_page(
            request, session, billing, principal, customer.id, values=form, errors={field: exc.detail}
        )
    return await audited_redirect(
        session,
        action="admin.credit_note_issued",
        at=note.created_at,
        customer=customer.id,
        target=note.id,
        data={"invoice": invoice.id, "amount": amount, "currency": note.currency},
        done="credit_note",
    )


@post("/customers/{customer_id:str}/portal_session", summary="Open a portal session for the customer")
async def open_portal_session(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
    principal: NamedDependency[Principal],
    state: State,
) -> Template:
    """As `POST /v1/portal_sessions {customer}`: a one-time link (5 minutes) the operator can hand on. The
    page shows it once; it is a credential, so it is never put in a URL or the audit log."""
    billing = billing_services(session, clock, billing_config)
    customer = await billing.customers.get(customer_id[:40])
    issued = await PortalSessionService(session, clock).issue(
        customer.id, scope=None, return_url=None, locale=None
    )
    base = (state.settings.public_base_url or state.settings.public_url).rstrip("/")
    await record(
        session,
        action="admin.portal_session_opened",
        at=issued.row.created_at,
        tenant_id=customer.id,
        target=issued.row.id,
    )
    link = f"{base}/portal/session/{issued.token}"
    return await _customer_page(request, session, billing, principal, customer.id, portal_link=link)


PLAN_CHANGE_PATH = "/customers/{customer_id:str}/subscriptions/{subscription_id:str}/plan_change"


@get(
    PLAN_CHANGE_PATH,
    summary="Change plan: pick a price, see the preview",
    dependencies=SUBSCRIPTION_DEPENDENCIES,
)
async def plan_change_page(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    subscription_id: FromPath[str],
    subscriptions: NamedDependency[SubscriptionService],
    clock: NamedDependency[Clock],
    principal: NamedDependency[Principal],
    price: Annotated[str, QueryParameter(name="price", max_length=200)] = "",
) -> Template:
    """The prices the subscription may move to; with `price`, exactly what the change would bill now: the
    API's `preview_change` (the change made in a transaction that is rolled back), then a confirm form."""
    preview, error = None, None
    if price:
        # Before this request's session reads anything: the preview runs in a transaction of its own,
        # and on SQLite a request transaction already holding the write lock would make it wait on
        # itself. A subscription outside `customer_id` still gets the 404 below, preview unseen.
        try:
            preview = await preview_change(
                request.app.state,
                clock,
                principal,
                subscription_id[:40],
                billing_schemas.ChangePreviewRequest(price=price),
            )
        except DomainError as exc:  # an unknown price, a refused change: beside the choice
            error = exc.detail
    sub = await subscriptions.get(subscription_id[:40], scope=customer_id[:40])
    prices = (
        await subscriptions.catalog.list_prices(
            after=None, limit=LIST_LIMIT, plan_id=None, active=True, currency=sub.currency
        )
    ).items
    options = [
        (p.lookup_key or p.id, p.nickname or p.lookup_key or p.id) for p in prices if p.id != sub.price_id
    ]
    return render_page(
        request,
        "admin/plan_change.html",
        {
            "sub": sub,
            "customer_id": sub.tenant_id,
            "options": options,
            "price": price,
            "preview": preview,
            "error": error,
        },
        package="admin",
        status_code=422 if error else 200,
    )


@post(
    PLAN_CHANGE_PATH,
    summary="Change plan (after the preview)",
    status_code=303,
    dependencies=SUBSCRIPTION_DEPENDENCIES,
)
async def change_plan(
    request: Request[Any, Any, Any],
    customer_id: FromPath[str],
    subscription_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    subscriptions: NamedDependency[SubscriptionService],
) -> Redirect:
    """As `POST /v1/subscriptions/{id}/plan_change {price}`: upgrades now, downgrades at the period end."""
    form = {k: str(v)[:200] for k, v in (await request.form()).items()}
    row = await subscriptions.change_plan(
        subscription_id[:40], price=form.get("price", ""), scope=customer_id[:40]
    )
    return await audited_redirect(
        session,
        action="admin.plan_changed",
        at=await subscriptions.now_for(row.test_clock_id),
        customer=row.tenant_id,
        target=row.id,
        data={"price": form.get("price", ""), "scheduled": row.scheduled_price_id is not None},
        done="plan_change",
    )


ROUTES = [
    refund_payment,
    resend_email,
    extend_trial,
    plan_change_page,
    change_plan,
    open_portal_session,
    search_page,
    customer_page,
    grant_credit,
    issue_credit_note,
    cancel_subscription,
    pause_subscription,
]
