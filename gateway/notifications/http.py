"""/v1/webhook_endpoints: CRUD (scope webhooks:*) and the delivery log of each endpoint."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.notifications import schemas as s
from gateway.notifications.repository import WebhookRepository
from gateway.notifications.service import WebhookEndpointService
from gateway.security.outbound import OutboundPolicy
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.schemas import changes_of
from gateway.web.timestamps import parse_timestamp

READ = {"scope": "webhooks:read"}
WRITE = {"scope": "webhooks:write"}


def provide_endpoints(
    session: NamedDependency[AsyncSession], clock: NamedDependency[Clock], state: State
) -> WebhookEndpointService:
    return WebhookEndpointService(
        WebhookRepository(session), clock, state.secret_box, OutboundPolicy.for_webhooks(state.settings)
    )


class WebhookEndpointController(Controller):
    path = "/webhook_endpoints"
    tags = ["webhooks"]
    dependencies = {"endpoints": Provide(provide_endpoints, sync_to_thread=False)}

    @post(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Register a webhook endpoint; the response carries its signing secret (whsec_…)",
    )
    async def create(
        self,
        data: JSONBody[s.WebhookEndpointCreate],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
    ) -> s.WebhookEndpoint:
        row = await endpoints.create(
            url=data.url,
            enabled_events=data.enabled_events,
            description=data.description,
            enabled=data.enabled,
            scope=principal.tenant_id,
        )
        return s.WebhookEndpoint.of(row, secret=endpoints.secret_of(row))

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List webhook endpoints")
    async def list_(
        self,
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
    ) -> s.WebhookEndpointList:
        result = await endpoints.list(scope=principal.tenant_id, after=page.after, limit=page.limit)
        return s.WebhookEndpointList(
            [s.WebhookEndpoint.of(r) for r in result.items],
            result.next_cursor is not None,
            result.next_cursor,
        )

    @get(
        "/{endpoint_id:str}",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="Retrieve a webhook endpoint (with its signing secret)",
    )
    async def retrieve(
        self,
        endpoint_id: FromPath[str],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
    ) -> s.WebhookEndpoint:
        row = await endpoints.get(endpoint_id, scope=principal.tenant_id)
        return s.WebhookEndpoint.of(row, secret=endpoints.secret_of(row))

    @patch("/{endpoint_id:str}", opt=WRITE, responses=ERROR_RESPONSES, summary="Update a webhook endpoint")
    async def update(
        self,
        endpoint_id: FromPath[str],
        data: JSONBody[s.WebhookEndpointUpdate],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
    ) -> s.WebhookEndpoint:
        row = await endpoints.update(endpoint_id, changes_of(data), scope=principal.tenant_id)
        return s.WebhookEndpoint.of(row)

    @delete(
        "/{endpoint_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Delete a webhook endpoint and its delivery log",
    )
    async def delete_(
        self,
        endpoint_id: FromPath[str],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
    ) -> s.WebhookEndpoint:
        return s.WebhookEndpoint.of(await endpoints.delete(endpoint_id, scope=principal.tenant_id))

    @get(
        "/{endpoint_id:str}/deliveries",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="The delivery log of an endpoint: attempts, last status code, next attempt, delivered at",
    )
    async def deliveries(
        self,
        endpoint_id: FromPath[str],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        status: Annotated[
            Literal["pending", "delivered", "failed"] | None, QueryParameter(name="status")
        ] = None,
    ) -> s.WebhookDeliveryList:
        result = await endpoints.deliveries(
            endpoint_id, scope=principal.tenant_id, after=page.after, limit=page.limit, status=status
        )
        return s.WebhookDeliveryList(
            [s.WebhookDelivery.of(r) for r in result.items],
            result.next_cursor is not None,
            result.next_cursor,
        )

    @post(
        "/{endpoint_id:str}/replay",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Deliver a range of past events to this endpoint again, in event order",
    )
    async def replay(
        self,
        endpoint_id: FromPath[str],
        data: JSONBody[s.WebhookReplayRequest],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
    ) -> s.WebhookReplay:
        if data.from_seq is not None and data.to_seq is not None and data.from_seq > data.to_seq:
            raise ValidationFailed("from_seq is after to_seq", field="to_seq")
        from_time = parse_timestamp(data.from_time, "from_time")
        to_time = parse_timestamp(data.to_time, "to_time")
        if from_time is not None and to_time is not None and from_time >= to_time:
            raise ValidationFailed("from_time is not before to_time", field="to_time")
        result = await endpoints.replay(
            endpoint_id,
            scope=principal.tenant_id,
            from_seq=data.from_seq,
            to_seq=data.to_seq,
            from_time=from_time,
            to_time=to_time,
            event_types=data.event_types,
        )
        return s.WebhookReplay(
            "webhook_replay",
            result.endpoint_id,
            result.created,
            result.requeued,
            [s.WebhookDelivery.of(r) for r in result.deliveries],
            result.next_from_seq,
        )


class WebhookDeliveryController(Controller):
    path = "/webhook_deliveries"
    tags = ["webhooks"]
    dependencies = {"endpoints": Provide(provide_endpoints, sync_to_thread=False)}

    @post(
        "/{delivery_id:str}/resend",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Send a delivery again (due now, a fresh attempt budget, in its endpoint's event order)",
    )
    async def resend(
        self,
        delivery_id: FromPath[str],
        endpoints: NamedDependency[WebhookEndpointService],
        principal: NamedDependency[Principal],
    ) -> s.WebhookDelivery:
        return s.WebhookDelivery.of(await endpoints.resend(delivery_id, scope=principal.tenant_id))


CONTROLLERS = [WebhookEndpointController, WebhookDeliveryController]
