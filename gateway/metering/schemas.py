"""Request and response types of the metering API: meters, usage events (CloudEvents-shaped), usage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from gateway.metering.models import Meter as MeterRow
from gateway.metering.service import MAX_BATCH, EventInput, ItemResult

Ref = Annotated[str, Meta(min_length=1, max_length=200)]
Path = Annotated[str, Meta(min_length=1, max_length=200)]
PropertyName = Annotated[str, Meta(min_length=1, max_length=200)]
FilterValue = Annotated[str, Meta(max_length=200)] | int | float | bool
Data = dict[PropertyName, Any]


def number(value: Decimal) -> str:
    """Usage values as exact decimal strings ("9500", "12.5"): JSON numbers would lose precision."""
    return format(value.normalize(), "f")


# -- meters ---------------------------------------------------------------------------------------------


class MeterCreate(Struct, forbid_unknown_fields=True):
    key: Annotated[str, Meta(min_length=1, max_length=64)]
    event_type: Ref
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"]
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    value_property: Path | None = None
    filters: Annotated[
        dict[Path, FilterValue | Annotated[list[FilterValue], Meta(max_length=50)]], Meta(max_length=20)
    ] = {}
    group_by: Annotated[list[Path], Meta(max_length=10)] = []


class MeterUpdate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]


class Meter(Struct):
    id: str
    key: str
    name: str
    event_type: str
    aggregation: str
    value_property: str | None
    filters: dict[str, Any]
    group_by: list[str]
    created_at: datetime
    archived_at: datetime | None
    object: Literal["meter"] = "meter"

    @classmethod
    def of(cls, row: MeterRow) -> Meter:
        return cls(
            id=row.id,
            key=row.key,
            name=row.name,
            event_type=row.event_type,
            aggregation=row.aggregation,
            value_property=row.value_property,
            filters=dict(row.filters),
            group_by=list(row.group_by),
            created_at=row.created_at,
            archived_at=row.archived_at,
        )


class MeterList(Struct):
    data: list[Meter]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


# -- usage events ---------------------------------------------------------------------------------------

EventTime = Annotated[
    str, Meta(max_length=40, description="ISO 8601 with a time zone; default: the customer's now")
]


class UsageEventIn(Struct, forbid_unknown_fields=True):
    """One event in the CloudEvents shape. Every field is checked per event, so that one bad event in a
    batch is reported on its own (missing fields too)."""

    id: Ref | None = None
    source: Ref | None = None
    type: Ref | None = None
    subject: Annotated[Ref, Meta(description="The customer's id, or its metadata.external_key")] | None = None
    time: EventTime | None = None
    data: Data | None = None
    specversion: Annotated[str, Meta(max_length=10)] | None = None
    datacontenttype: Annotated[str, Meta(max_length=100)] | None = None

    def as_input(self) -> EventInput:
        return EventInput(self.id, self.source, self.type, self.subject, self.time, self.data)


class UsageEventsIn(Struct, forbid_unknown_fields=True):
    """Either one event (its fields at the top level) or a batch in `events` (up to 1,000). `atomic`:
    reject the whole batch if any event is invalid (duplicates are never invalid)."""

    events: Annotated[list[UsageEventIn], Meta(max_length=MAX_BATCH)] | None = None
    atomic: bool = False
    id: Ref | None = None
    source: Ref | None = None
    type: Ref | None = None
    subject: Ref | None = None
    time: EventTime | None = None
    data: Data | None = None
    specversion: Annotated[str, Meta(max_length=10)] | None = None
    datacontenttype: Annotated[str, Meta(max_length=100)] | None = None

    def single(self) -> EventInput:
        return EventInput(self.id, self.source, self.type, self.subject, self.time, self.data)


class UsageEventResult(Struct, omit_defaults=True):
    index: int
    status: int
    id: str | None = None
    source: str | None = None
    duplicate: bool = False
    code: str | None = None
    detail: str | None = None
    field: str | None = None

    @classmethod
    def of(cls, r: ItemResult) -> UsageEventResult:
        return cls(r.index, r.status, r.id, r.source, r.duplicate, r.code, r.detail, r.field)


class UsageEventBatchResult(Struct):
    data: list[UsageEventResult]
    accepted: int
    duplicates: int
    rejected: int
    object: Literal["list"] = "list"


class UsageEventVoid(Struct, forbid_unknown_fields=True):
    source: Ref
    subject: Annotated[Ref, Meta(description="The customer's id, or its metadata.external_key")]


class VoidedEvent(Struct):
    id: str
    source: str
    customer: str
    time: datetime
    voided_at: datetime | None
    meters: list[str]
    object: Literal["usage_event"] = "usage_event"


# -- usage ----------------------------------------------------------------------------------------------


class UsageValue(Struct):
    group: dict[str, str]
    value: str


class UsageWindowOut(Struct):
    start: datetime
    end: datetime
    values: list[UsageValue]


class MeterUsage(Struct):
    meter: str
    aggregation: str
    totals: list[UsageValue]
    windows: list[UsageWindowOut]


class UsageReport(Struct):
    customer: str
    start: datetime
    end: datetime
    window: str | None
    tz: str
    data: list[MeterUsage]
    object: Literal["usage"] = "usage"
