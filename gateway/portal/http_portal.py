"""The customer portal's API and its entry.

- `GET/PUT /v1/portal_configuration[?customer=]`: which actions a portal offers (platform keys).
- `POST /v1/portal_sessions` {customer, return_url?, locale?}: a one-time link to the portal (the app asks;
  a tenant key for its own customer only). The answer's `url` opens once, within 5 minutes.
- `GET /portal/session/{token}`: the link. Sets the HttpOnly session cookie and sends the browser to /portal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.response import Redirect, Template
from msgspec import Meta, Struct
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.wiring import billing_services
from gateway.catalog.models import Coupon
from gateway.customers import CustomerService
from gateway.customers.repository import CustomerRepository
from gateway.entitlements.http import entitlements_snapshot
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError
from gateway.payments.methods import MethodService
from gateway.payments.runtime import PaymentsRuntime
from gateway.payments.service import PaymentService
from gateway.portal import login_pages, pages_manage, portal_sso
from gateway.portal.config import ACTIONS, PortalConfigService, PortalSettings
from gateway.portal.entry import into_portal
from gateway.portal.feedback import offer_text, reasons
from gateway.portal.overview import current_plan, interval_label, status_label
from gateway.portal.session import PortalSessionService
from gateway.portal.visitor import Visitor, live_subscription, portal_page, visitor_of
from gateway.subscriptions.domain import CancellationFeedback
from gateway.subscriptions.http import DEPENDENCIES
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.service import SubscriptionService
from gateway.web.cookies import LANG_COOKIE
from gateway.web.problems import ERROR_RESPONSES
from gateway.webui.pages import page_router

CONFIG_READ = {"scope": "portal:read"}
CONFIG_WRITE = {"scope": "portal:write"}
SESSION_WRITE = {"scope": "portal:write"}

ActionName = Literal[
    "upgrade",
    "downgrade",
    "switch_interval",
    "change_seats",
    "addons",
    "promotion_code",
    "pause",
    "cancel",
    "update_billing_details",
]
ReturnUrl = Annotated[str, Meta(min_length=8, max_length=2048, pattern=r"^https?:/{2}\S+$")]
Locale = Literal["en", "nl"]
CustomerId = Annotated[str, Meta(min_length=1, max_length=40)]
PlanKey = Annotated[str, Meta(min_length=1, max_length=100)]


class ConfigurationUpdate(Struct, forbid_unknown_fields=True):
    actions: Annotated[list[ActionName], Meta(max_length=len(ACTIONS))]
    plans: Annotated[list[PlanKey], Meta(max_length=50)] = []
    retention_coupon: Annotated[str, Meta(min_length=1, max_length=40)] | None = None
    default_return_url: ReturnUrl | None = None


class Configuration(Struct):
    object: Literal["portal_configuration"]
    customer: str | None
    # `platform` (the default) or the customer's id: where the configuration in force comes from.
    source: str
    actions: list[str]
    plans: list[str]
    retention_coupon: str | None
    default_return_url: str | None

    @classmethod
    def of(cls, customer: str | None, settings: PortalSettings) -> Configuration:
        return cls(
            "portal_configuration",
            customer,
            settings.scope,
            list(settings.actions),
            list(settings.plans),
            settings.retention_coupon,
            settings.default_return_url,
        )


class SessionCreate(Struct, forbid_unknown_fields=True):
    customer: CustomerId
    return_url: ReturnUrl | None = None
    locale: Locale | None = None


class PortalSessionOut(Struct):
    id: str
    object: Literal["portal_session"]
    customer: str
    url: str
    return_url: str | None
    locale: str | None
    created_at: datetime
    expires_at: datetime


CustomerQuery = Annotated[
    str | None,
    QueryParameter(
        name="customer",
        max_length=40,
        description="A customer's own configuration (absent: the platform default).",
    ),
]


def _config_service(session: AsyncSession, clock: Clock) -> PortalConfigService:
    return PortalConfigService(session, clock)


async def _check_customer(session: AsyncSession, clock: Clock, customer: str | None) -> None:
    if customer is not None:
        await CustomerService(CustomerRepository(session), clock).get(customer)


class PortalConfigurationController(Controller):
    path = "/portal_configuration"
    tags = ["portal"]

    @get("/", opt=CONFIG_READ, responses=ERROR_RESPONSES, summary="The portal configuration in force")
    async def retrieve(
        self,
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        customer: CustomerQuery = None,
    ) -> Configuration:
        await _check_customer(session, clock, customer)
        return Configuration.of(customer, await _config_service(session, clock).for_customer(customer))

    @put(
        "/",
        opt=CONFIG_WRITE,
        responses=ERROR_RESPONSES,
        summary="Set which actions, plan switches, retention coupon and return URL a portal offers",
    )
    async def update(
        self,
        data: JSONBody[ConfigurationUpdate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        customer: CustomerQuery = None,
    ) -> Configuration:
        await _check_customer(session, clock, customer)
        settings = await _config_service(session, clock).put(
            customer,
            actions=list(data.actions),
            plans=list(data.plans),
            retention_coupon=data.retention_coupon,
            default_return_url=data.default_return_url,
        )
        return Configuration.of(customer, settings)


class PortalSessionController(Controller):
    path = "/portal_sessions"
    tags = ["portal"]

    @post(
        "/",
        opt=SESSION_WRITE,
        responses=ERROR_RESPONSES,
        summary="A one-time link to the customer portal (opens once, within 5 minutes)",
    )
    async def create(
        self,
        data: JSONBody[SessionCreate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        state: State,
    ) -> PortalSessionOut:
        issued = await PortalSessionService(session, clock).issue(
            data.customer, scope=principal.tenant_id, return_url=data.return_url, locale=data.locale
        )
        base = (state.settings.public_base_url or state.settings.public_url).rstrip("/")
        row = issued.row
        return PortalSessionOut(
            row.id,
            "portal_session",
            row.tenant_id,
            f"{base}/portal/session/{issued.token}",
            row.return_url,
            row.locale,
            row.created_at,
            row.link_expires_at,
        )


class PortalEntryController(Controller):
    path = "/"

    @get("/session/{token:str}", summary="The portal link: a portal session cookie, then the portal")
    async def open_link(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        state: State,
    ) -> Response[Any]:
        opened = await PortalSessionService(session, clock).open(token[:200])
        response = into_portal(opened.token, request)
        if opened.row.locale:
            response.set_cookie(key=LANG_COOKIE, value=opened.row.locale, path="/", samesite="lax")
        return response


# ---- pages ----------------------------------------------------------------------------------------


async def _return_url(visitor: Visitor) -> str | None:
    return visitor.row.return_url or visitor.settings.default_return_url


class PortalPagesController(Controller):
    path = "/"
    dependencies = DEPENDENCIES

    @get("/", summary="The portal overview")
    async def overview(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
    ) -> Template:
        visitor = await visitor_of(request, session, clock)
        return await overview_page(request, session, clock, visitor)

    @get("/cancel", summary="The cancel flow: why, and the retention offer")
    async def cancel_form(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Template:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("cancel")
        sub = await live_subscription(subscriptions, visitor)
        return await self._cancel_page(request, session, visitor, sub, None, "", "")

    async def _cancel_page(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        visitor: Visitor,
        sub: Subscription,
        error: str | None,
        chosen: str,
        comment: str,
    ) -> Template:
        coupon_id = visitor.settings.retention_coupon
        coupon = await session.get(Coupon, coupon_id) if coupon_id else None
        return portal_page(
            request,
            visitor,
            "portal/portal_cancel.html",
            {
                "sub": sub,
                "reasons": reasons,
                "offer": offer_text,
                "coupon": coupon,
                "error_code": error,
                "chosen": chosen,
                "comment": comment,
            },
            status=422 if error else 200,
        )

    @post("/cancel", summary="Cancel at the period end, with the reason")
    async def cancel(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any] | Template:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("cancel")
        sub = await live_subscription(subscriptions, visitor)
        form = await request.form()
        feedback = str(form.get("feedback") or "")[:40]
        comment = str(form.get("comment") or "")
        if feedback not in {reason.value for reason in CancellationFeedback} or len(comment) > 500:
            # Nothing is canceled: the form comes back with the error beside the question.
            error = "comment_too_long" if len(comment) > 500 else "feedback_missing"
            return await self._cancel_page(request, session, visitor, sub, error, feedback, comment[:500])
        await subscriptions.cancel(
            sub.id, at_period_end=True, feedback=feedback, comment=comment or None, scope=visitor.customer.id
        )
        return Redirect("/portal?done=canceled", status_code=303)

    @post("/undo_cancel", summary="Undo a cancellation scheduled for the period end")
    async def undo_cancel(
        self,
        request: Request[Any, Any, Any],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Response[Any]:
        visitor = await visitor_of(request, session, clock)
        visitor.settings.require("cancel")
        sub = await live_subscription(subscriptions, visitor)
        await subscriptions.undo_cancel(sub.id, scope=visitor.customer.id)
        return Redirect("/portal?done=kept", status_code=303)


# What a `?done=` after an action says (the template words each code in the page's language).
DONE_CODES = {
    "canceled": "cancel_scheduled",
    "kept": "cancel_undone",
    "plan_changed": "plan_changed",
    "plan_scheduled": "plan_scheduled",
    "seats_changed": "seats_changed",
    "addon_added": "addon_added",
    "addon_removed": "addon_removed",
    "promotion_applied": "promotion_applied",
    "paused": "paused",
    "resumed": "resumed",
    "paid": "paid",
    "payment_returned": "payment_returned",
    "details_saved": "details_saved",
    "method_added": "method_added",
    "method_default": "method_default",
}


async def overview_page(
    request: Request[Any, Any, Any],
    session: AsyncSession,
    clock: Clock,
    visitor: Visitor,
    *,
    promo_error: DomainError | None = None,
    promo: str = "",
) -> Template:
    """The overview: plan, seats, add-ons, discounts, the actions the configuration offers, invoices
    (PDF, pay now) and payment methods. Also the page a refused promotion code comes back to."""
    from gateway.portal.pages_manage import error_text

    state = request.app.state
    billing = billing_services(session, clock, state.billing_config)
    plan = await current_plan(billing.subscriptions, billing.catalog, visitor.customer)
    sub = plan.sub if plan else None
    addons, discounts, scheduled_name = [], [], None
    if sub is not None:
        for addon in await billing.subscriptions.addons(sub):
            price = await billing.catalog.get_price(addon.price_id)
            addons.append((price.nickname or price.lookup_key or price.id, addon.quantity))
        discounts = list(await billing.discounts.active(sub.tenant_id, sub.id))
        if sub.scheduled_price_id:
            scheduled = await billing.catalog.get_price(sub.scheduled_price_id)
            scheduled_name = (await billing.catalog.get_plan(scheduled.plan_id)).name
    invoices = [
        i
        for i in await billing.invoices.repo.list_invoices(after=None, limit=200, scope=visitor.customer.id)
        if i.status != "draft"
    ]
    invoices.sort(key=lambda i: (i.finalized_at or i.created_at, i.id), reverse=True)
    runtime: PaymentsRuntime = state.payments
    core = PaymentService(session, clock, runtime.registry(), runtime.billing_config, runtime.settings)
    methods = list(await MethodService(core).list(visitor.customer))
    snapshot = await entitlements_snapshot(state.engine, visitor.customer.id)
    names = {f.key: f.name for f in (await billing.catalog.list_features(after=None, limit=200)).items}
    features = [(names.get(f.feature, f.feature), f) for f in snapshot.features] if snapshot else []
    settings = visitor.settings
    return portal_page(
        request,
        visitor,
        "portal/portal_overview.html",
        {
            "sub": sub,
            "plan_name": plan.plan_name if plan else None,
            "price_amount": plan.price_amount if plan else 0,
            "scheduled_name": scheduled_name,
            "addons": addons,
            "discounts": discounts,
            "invoices": invoices[:24],
            "methods": methods,
            "features": features,
            "interval_label": interval_label,
            "status_label": status_label,
            "notice_code": DONE_CODES.get(request.query_params.get("done", "")),
            "failed_code": request.query_params.get("failed", "")[:60] or None,
            "return_url": await _return_url(visitor),
            "offers": settings.offers,
            "can_cancel": settings.offers("cancel"),
            "can_change_plan": any(settings.offers(a) for a in ("upgrade", "downgrade", "switch_interval")),
            "promo": promo,
            "promo_error": promo_error,
            "error_text": error_text,
        },
        status=422 if promo_error else 200,
    )


API_CONTROLLERS = [PortalConfigurationController, PortalSessionController]
PORTAL_PAGES = page_router(
    path="/portal",
    route_handlers=[
        PortalEntryController,
        PortalPagesController,
        *pages_manage.ROUTES,
        *portal_sso.ROUTES,
        *login_pages.ROUTES,
    ],
)
