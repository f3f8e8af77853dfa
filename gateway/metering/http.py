"""Metering endpoints under /v1: meters, usage events (ingest, void) and usage queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import NotFound
from gateway.metering import domain as d
from gateway.metering import schemas as s
from gateway.metering.queries import usage_over
from gateway.metering.repository import EventStore, MeterRepository
from gateway.metering.service import CustomerUnknown, IngestLimits, IngestService, MeterService
from gateway.web.deps import ListParams, request_actor
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.timestamps import AwareTimestamp, parse_timestamp

METERS_READ = {"scope": "meters:read"}
METERS_WRITE = {"scope": "meters:write"}
USAGE_READ = {"scope": "usage:read"}
USAGE_WRITE = {"scope": "usage:write"}


def provide_meters(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> MeterService:
    return MeterService(MeterRepository(session), clock)


def limits_of(settings: Settings) -> IngestLimits:
    return IngestLimits(
        late_grace=timedelta(days=settings.metering_late_grace_days),
        future_tolerance=timedelta(seconds=settings.metering_future_tolerance_seconds),
    )


class MeterController(Controller):
    path = "/meters"
    tags = ["metering"]
    dependencies = {"meters": Provide(provide_meters, sync_to_thread=False)}

    @post("/", opt=METERS_WRITE, responses=ERROR_RESPONSES, summary="Define a meter")
    async def create(self, data: JSONBody[s.MeterCreate], meters: NamedDependency[MeterService]) -> s.Meter:
        row = await meters.create(
            key=data.key,
            name=data.name,
            event_type=data.event_type,
            aggregation=data.aggregation,
            value_property=data.value_property,
            filters=data.filters,
            group_by=data.group_by,
        )
        return s.Meter.of(row)

    @get("/", opt=METERS_READ, responses=ERROR_RESPONSES, summary="List meters")
    async def list_(
        self,
        meters: NamedDependency[MeterService],
        page: NamedDependency[ListParams],
        include_archived: Annotated[bool, QueryParameter(name="include_archived")] = False,
    ) -> s.MeterList:
        result = await meters.page(after=page.after, limit=page.limit, include_archived=include_archived)
        return s.MeterList(
            [s.Meter.of(m) for m in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{meter:str}", opt=METERS_READ, responses=ERROR_RESPONSES, summary="A meter, by id or key")
    async def get_(self, meter: FromPath[str], meters: NamedDependency[MeterService]) -> s.Meter:
        return s.Meter.of(await meters.get(meter))

    @patch("/{meter:str}", opt=METERS_WRITE, responses=ERROR_RESPONSES, summary="Rename a meter")
    async def update(
        self, meter: FromPath[str], data: JSONBody[s.MeterUpdate], meters: NamedDependency[MeterService]
    ) -> s.Meter:
        return s.Meter.of(await meters.rename(meter, data.name))

    @delete(
        "/{meter:str}",
        opt=METERS_WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Archive a meter: it stops counting new events; its usage stays readable",
    )
    async def archive(self, meter: FromPath[str], meters: NamedDependency[MeterService]) -> s.Meter:
        return s.Meter.of(await meters.archive(meter))


class UsageEventController(Controller):
    path = "/usage_events"
    tags = ["metering"]

    @post(
        "/",
        opt=USAGE_WRITE,
        status_code=201,
        responses={
            **ERROR_RESPONSES,
            200: ResponseSpec(
                data_container=s.UsageEventBatchResult | s.UsageEventResult,  # type: ignore[arg-type]
                description="A batch (one result per event), or a single event that is a duplicate",
                generate_examples=False,
            ),
        },
        summary="Report usage: one event, or a batch of up to 1,000 with a result per event",
        description=(
            "Events are deduplicated by (customer, `source`, `id`) for `metering_dedup_retention_days`: a "
            "repeat is answered 200 with `duplicate: true` and never counted twice. A single event answers "
            "with its own status (201 stored, 200 duplicate, 4xx with a problem). A batch answers 200 with "
            "one result per event (`status`, `duplicate`, `code`); invalid events are reported and the "
            "others stored, unless `atomic` (then any invalid event rejects the batch with 422). The answer "
            "comes after the commit: an acknowledged event is durable."
        ),
    )
    async def ingest(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[s.UsageEventsIn],
        principal: NamedDependency[Principal],
        clock: NamedDependency[Clock],
    ) -> Response[Any]:
        db: Database = request.app.state.db
        settings: Settings = request.app.state.settings
        single = data.events is None
        items = [data.single()] if single else [e.as_input() for e in data.events or []]
        # Our own transaction, committed before the answer is written: "acknowledged = committed".
        async with db.unit_of_work(actor=request_actor(request)) as session:
            service = IngestService(MeterRepository(session), EventStore(session), clock, limits_of(settings))
            results = await service.ingest(items, scope=principal.tenant_id, atomic=data.atomic)
        if single:
            result = results[0]
            if result.error is not None:
                raise result.error
            return Response(s.UsageEventResult.of(result), status_code=result.status)
        out = [s.UsageEventResult.of(r) for r in results]
        return Response(
            s.UsageEventBatchResult(
                out,
                accepted=sum(1 for r in results if r.status == 201),
                duplicates=sum(1 for r in results if r.duplicate),
                rejected=sum(1 for r in results if r.error is not None),
            ),
            status_code=200,
        )

    @post(
        "/{event_id:str}/void",
        opt=USAGE_WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Void an event (addressed by customer, source and id): it stops counting everywhere",
    )
    async def void(
        self,
        event_id: FromPath[str],
        data: JSONBody[s.UsageEventVoid],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        clock: NamedDependency[Clock],
    ) -> s.VoidedEvent:
        service = IngestService(MeterRepository(session), EventStore(session), clock)
        event, meters = await service.void(
            source=data.source, event_id=event_id, subject=data.subject, scope=principal.tenant_id
        )
        return s.VoidedEvent(
            event.event_id, event.source, event.tenant_id, event.time, event.voided_at, meters
        )


class UsageController(Controller):
    path = "/usage"
    tags = ["metering"]

    @get(
        "/",
        opt=USAGE_READ,
        responses=ERROR_RESPONSES,
        summary="A customer's usage per meter, in windows of a time zone",
        description=(
            "Windows (`hour`, `day`, `month`) are cut at the local boundaries of `tz` (a 23- or 25-hour day "
            "across a DST change is one day). Totals are over the whole range: for count and sum meters "
            "they equal the sum of the windows. Defaults: the customer's month so far in `tz` (on its "
            "test clock if it has one); every active meter."
        ),
    )
    async def usage(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        clock: NamedDependency[Clock],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=200)] = None,
        meter: Annotated[str | None, QueryParameter(name="meter", max_length=200)] = None,
        start: Annotated[AwareTimestamp | None, QueryParameter(name="from")] = None,
        end: Annotated[AwareTimestamp | None, QueryParameter(name="to")] = None,
        window: Annotated[d.Window | None, QueryParameter(name="window")] = None,
        tz: Annotated[str, QueryParameter(name="tz", max_length=64)] = "UTC",
        group_by: Annotated[
            str | None, QueryParameter(name="group_by", max_length=500, description="Comma-separated")
        ] = None,
    ) -> s.UsageReport:
        zone = d.zone(tz)
        store = EventStore(session)
        name = customer or principal.tenant_id
        if name is None:
            raise CustomerUnknown("say which customer", field="customer")
        subject = (await store.subjects([name])).get(name)
        if subject is None or (principal.tenant_id is not None and subject.tenant_id != principal.tenant_id):
            raise CustomerUnknown(f"no customer {name!r}", field="customer")
        now = clock.now()
        if subject.test_clock_id:
            now = (await store.clock_times([subject.test_clock_id])).get(subject.test_clock_id, now)
        to = parse_timestamp(end, "to") or now
        local = to.astimezone(zone)
        default_start = datetime(local.year, local.month, 1, tzinfo=zone).astimezone(UTC)
        frm = parse_timestamp(start, "from") or min(default_start, to - timedelta(microseconds=1))
        groups = [g.strip() for g in (group_by or "").split(",") if g.strip()]
        repo = MeterRepository(session)
        if meter is not None:
            row = await repo.by_ref(meter)
            if row is None:
                raise NotFound(f"no meter {meter!r}", code="meter_not_found", field="meter")
            rows = [row]
        else:
            rows = [m for ms in (await repo.active_by_type()).values() for m in ms]
            rows.sort(key=lambda m: m.key)
        data = []
        for row in rows:
            use = groups if meter is not None else [g for g in groups if g in row.group_by]
            result = await usage_over(
                session,
                tenant_id=subject.tenant_id,
                meter=row,
                start=frm,
                end=to,
                window=window,
                tz=zone,
                group_by=use,
            )
            data.append(
                s.MeterUsage(
                    meter=row.key,
                    aggregation=row.aggregation,
                    totals=_values(use, result.totals),
                    windows=[
                        s.UsageWindowOut(w.start, w.end, _values(use, w.values)) for w in result.windows
                    ],
                )
            )
        return s.UsageReport(subject.tenant_id, frm, to, window.value if window else None, tz, data)


def _values(groups: list[str], values: dict[tuple[str, ...], Decimal]) -> list[s.UsageValue]:
    return [
        s.UsageValue(dict(zip(groups, key, strict=True)), s.number(value))
        for key, value in sorted(values.items())
    ]


METERING = [MeterController, UsageEventController, UsageController]
