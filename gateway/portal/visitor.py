"""Who is looking at a portal page: the customer a `tg_portal` session cookie names, with the portal
configuration in force for that customer; and how a portal page is rendered for them.

Every portal page starts here, before it reads anything else, so a browser without a live portal session
gets the 401 page (`portal_session_invalid`) and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.db.session import Database
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import NotFound
from gateway.portal.config import PortalConfigService, PortalSettings
from gateway.portal.session import COOKIE, PortalSessionService
from gateway.portal.session_models import PortalSession
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.service import SubscriptionService
from gateway.webui.pages import render_page


@dataclass(frozen=True, slots=True)
class Visitor:
    """The customer a portal session cookie names, with the configuration in force for it."""

    row: PortalSession
    customer: Customer
    settings: PortalSettings

    @property
    def principal(self) -> Principal:
        """The portal acts as the customer's own tenant key would: every service call is scoped to it, so
        an id of another customer's subscription or invoice is a 404, never a change."""
        return Principal(f"portal:{self.row.id}", frozenset({"subscriptions:write"}), self.customer.id)

    @property
    def actor(self) -> str:
        return f"portal:{self.row.id}"


async def visitor_of(request: Request[Any, Any, Any], session: AsyncSession, clock: Clock) -> Visitor:
    token = request.cookies.get(COOKIE, "")[:200]
    row = await PortalSessionService(session, clock).authenticate(token)
    customer = await CustomerService(CustomerRepository(session), clock).get(row.tenant_id)
    settings = await PortalConfigService(session, clock).for_customer(customer.id)
    return Visitor(row, customer, settings)


async def visitor_before_own_transactions(
    request: Request[Any, Any, Any], db: Database, clock: Clock
) -> Visitor:
    """The visitor, read in a short read-only transaction of its own. For a page that next calls a
    service opening its own transaction (a change preview, a payment): on SQLite the request's session,
    once it has read, holds the write lock, and that service would wait on the request itself."""
    async with db.unit_of_work(read_only=True) as session:
        return await visitor_of(request, session, clock)


def portal_page(
    request: Request[Any, Any, Any],
    visitor: Visitor,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> Template:
    # The customer's own language first, else the link's, else what the browser asks for.
    locale = getattr(visitor.customer, "preferred_locale", None) or visitor.row.locale
    return render_page(
        request,
        template,
        {"customer": visitor.customer, **context},
        package="portal",
        locale=locale,
        status_code=status,
    )


async def live_subscription(subscriptions: SubscriptionService, visitor: Visitor) -> Subscription:
    sub = await subscriptions.live_for_tenant(visitor.customer.id)
    if sub is None:
        raise NotFound("you have no subscription to change")
    return sub
