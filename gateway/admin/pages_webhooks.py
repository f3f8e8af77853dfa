"""Webhooks in the console (issue #14 "Webhooks and e-mails"): every endpoint (all tenants' and the
platform's), an endpoint's deliveries with their status, **resend** one delivery and **replay** a range of
past events, through `WebhookEndpointService`, exactly what the /v1 operations do:

- `GET /admin/webhooks` (webhooks:read): the endpoints.
- `GET /admin/webhooks/{endpoint}` (webhooks:read): the endpoint, its deliveries (`?status=` pending,
  delivered, failed), the resend buttons and the replay form.
- `POST /admin/webhooks/deliveries/{delivery}/resend` (webhooks:write): as
  `POST /v1/webhook_deliveries/{id}/resend`.
- `POST /admin/webhooks/{endpoint}/replay` (webhooks:write) = `POST /v1/webhook_endpoints/{id}/replay`
  (a time range, optional event types). Bad input shows the form again with the error beside the field.
Deliveries go out in event order per endpoint (the delivery worker sends an endpoint's queue in order).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.notifications.repository import WebhookRepository
from gateway.notifications.service import WebhookEndpointService
from gateway.security.outbound import OutboundPolicy
from gateway.web.timestamps import parse_timestamp
from gateway.webui.pages import render_page

PAGE = 50  # deliveries shown per page; a cursor link for more


def _service(session: AsyncSession, clock: Clock, state: State) -> WebhookEndpointService:
    policy = OutboundPolicy.for_webhooks(state.settings)
    return WebhookEndpointService(WebhookRepository(session), clock, state.secret_box, policy)


@get("/webhooks", summary="Webhook endpoints of every tenant and of the platform")
async def endpoints_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Template:
    rows = (await _service(session, clock, state).list(scope=None, after=None, limit=200)).items
    return render_page(request, "admin/webhooks.html", {"endpoints": rows}, package="admin")


async def _endpoint_page(
    request: Request[Any, Any, Any],
    service: WebhookEndpointService,
    endpoint_id: str,
    *,
    status: str | None = None,
    after: str | None = None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Template:
    endpoint = await service.get(endpoint_id, scope=None)
    deliveries = await service.deliveries(endpoint.id, scope=None, after=after, limit=PAGE, status=status)
    return render_page(
        request,
        "admin/webhook_endpoint.html",
        {
            "endpoint": endpoint,
            "deliveries": deliveries.items,
            "next_cursor": deliveries.next_cursor,
            "status": status,
            "form": form or {},
            "errors": errors or {},
            "notice": request.query_params.get("notice"),
        },
        package="admin",
        status_code=status_code,
    )


@get("/webhooks/{endpoint_id:str}", summary="An endpoint's deliveries, resend and replay")
async def endpoint_page(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, QueryParameter(name="status")] = None,
    after: Annotated[str | None, QueryParameter(name="starting_after", max_length=200)] = None,
) -> Template:
    service = _service(session, clock, state)
    return await _endpoint_page(request, service, endpoint_id[:40], status=status, after=after)


@post("/webhooks/deliveries/{delivery_id:str}/resend", status_code=303, summary="Send a delivery again")
async def resend_delivery(
    delivery_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Redirect:
    row = await _service(session, clock, state).resend(delivery_id[:40], scope=None)
    notice = urlencode({"notice": f"resent {row.id}"})
    return Redirect(f"/admin/webhooks/{row.endpoint_id}?{notice}", status_code=303)


@post("/webhooks/{endpoint_id:str}/replay", status_code=303, summary="Deliver a range of past events again")
async def replay_events(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    state: State,
) -> Template | Redirect:
    service = _service(session, clock, state)
    form = {k: str(v).strip()[:200] for k, v in (await request.form()).items() if k != "_csrf_token"}
    try:  # every check before anything is queued
        since = parse_timestamp(form.get("from_time") or None, "from_time")
        until = parse_timestamp(form.get("to_time") or None, "to_time")
        if since is not None and until is not None and since >= until:
            raise ValidationFailed("the start is not before the end", field="to_time")
        types = [t.strip() for t in form.get("event_types", "").split(",") if t.strip()][:40]
        result = await service.replay(
            endpoint_id[:40], scope=None, from_time=since, to_time=until, event_types=types or None
        )
    except ValidationFailed as exc:
        field = str(exc.extra.get("field", "form"))
        errors = {field if field in {"from_time", "to_time", "event_types"} else "event_types": exc.detail}
        return await _endpoint_page(
            request, service, endpoint_id[:40], form=form, errors=errors, status_code=422
        )
    notice = f"replayed {result.created + result.requeued} events"
    return Redirect(f"/admin/webhooks/{result.endpoint_id}?{urlencode({'notice': notice})}", status_code=303)


ROUTES = [endpoints_page, endpoint_page, resend_delivery, replay_events]
