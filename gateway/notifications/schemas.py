"""Request and response types of the webhook endpoint API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from gateway.notifications.models import WebhookDelivery as DeliveryRow
from gateway.notifications.models import WebhookEndpoint as EndpointRow
from gateway.web.timestamps import AwareTimestamp

Url = Annotated[str, Meta(min_length=8, max_length=2048, pattern=r"^https?://")]
EventPattern = Annotated[str, Meta(min_length=1, max_length=80)]
Events = Annotated[list[EventPattern], Meta(min_length=1, max_length=50)]
Description = Annotated[str, Meta(max_length=500)]


class WebhookEndpointCreate(Struct, forbid_unknown_fields=True):
    url: Url
    enabled_events: Events
    description: Description | None = None
    enabled: bool = True


class WebhookEndpointUpdate(Struct, forbid_unknown_fields=True):
    url: Url | UnsetType = UNSET
    enabled_events: Events | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    enabled: bool | UnsetType = UNSET


class WebhookEndpoint(Struct):
    id: str
    object: Literal["webhook_endpoint"]
    customer: str | None
    url: str
    description: str | None
    enabled_events: list[str]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    secret: str | None = None  # in the create and retrieve responses only

    @classmethod
    def of(cls, row: EndpointRow, *, secret: str | None = None) -> WebhookEndpoint:
        return cls(
            row.id,
            "webhook_endpoint",
            row.tenant_id,
            row.url,
            row.description,
            list(row.enabled_events),
            row.enabled,
            row.created_at,
            row.updated_at,
            secret,
        )


class WebhookEndpointList(Struct):
    data: list[WebhookEndpoint]
    has_more: bool
    next_cursor: str | None


class WebhookDelivery(Struct):
    id: str
    object: Literal["webhook_delivery"]
    endpoint: str
    event: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: DeliveryRow) -> WebhookDelivery:
        return cls(
            row.id,
            "webhook_delivery",
            row.endpoint_id,
            row.event_id,
            row.event_type,
            row.status,
            row.attempts,
            row.last_status_code,
            row.last_error,
            row.last_attempt_at,
            row.next_attempt_at,
            row.delivered_at,
            row.created_at,
        )


class WebhookDeliveryList(Struct):
    data: list[WebhookDelivery]
    has_more: bool
    next_cursor: str | None


Seq = Annotated[int, Meta(ge=1, le=2**62)]


class WebhookReplayRequest(Struct, forbid_unknown_fields=True):
    """A range of past events to deliver again: by event `seq` (inclusive, as `/v1/events` shows it)
    and/or by when they occurred (`from_time` inclusive, `to_time` exclusive), optionally only some
    event types. Everything the endpoint receives in the range, oldest first, at most 1,000 per call."""

    from_seq: Seq | None = None
    to_seq: Seq | None = None
    from_time: AwareTimestamp | None = None
    to_time: AwareTimestamp | None = None
    event_types: Events | None = None


class WebhookReplay(Struct):
    object: Literal["webhook_replay"]
    endpoint: str
    created: int  # deliveries of events never sent to this endpoint before
    requeued: int  # deliveries queued again
    deliveries: list[WebhookDelivery]
    next_from_seq: int | None  # the range holds more events: call again with this `from_seq`
