"""Metering use cases: defining meters, ingesting usage events, voiding one.

Ingestion answers per item and never lets one bad event reject the others (unless the caller asks for an
atomic batch). What it guarantees:
- an event is counted at most once per (tenant, source, id) within the retention window: the dedup key
  is claimed in the same transaction that stores the event and folds it into the roll-ups, so a repeat,
  a retry after a lost answer, or a concurrent copy is acknowledged as `duplicate`, never counted twice;
- acknowledged means committed: the caller commits before answering (see `gateway.metering.http`);
- an event's time is the customer's time: a customer on a test clock stamps and validates events on
  that clock, like its subscriptions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock, ensure_utc
from gateway.kernel.errors import Conflict, DomainError, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.metering import domain as d
from gateway.metering.models import Meter
from gateway.metering.queries import MeterNotFound, raw_events
from gateway.metering.repository import EventStore, MeterRepository, NewEvent, RollupKey, Subject

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]{0,63}$")
PATH_PATTERN = re.compile(r"^[A-Za-z0-9_\-$]{1,64}(\.[A-Za-z0-9_\-$]{1,64}){0,7}$")
MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class IngestLimits:
    late_grace: timedelta = timedelta(days=35)
    future_tolerance: timedelta = timedelta(minutes=5)


class MeterService:
    def __init__(self, repository: MeterRepository, clock: Clock) -> None:
        self.repo = repository
        self.clock = clock

    async def create(
        self,
        *,
        key: str,
        name: str | None,
        event_type: str,
        aggregation: str,
        value_property: str | None,
        filters: Mapping[str, Any],
        group_by: Sequence[str],
    ) -> Meter:
        if not KEY_PATTERN.match(key):
            raise ValidationFailed("key must be 1-64 characters of a-z, 0-9, '_', '-'", field="key")
        try:
            kind = d.Aggregation(aggregation)
        except ValueError:
            raise ValidationFailed(
                f"aggregation must be one of {[a.value for a in d.Aggregation]}", field="aggregation"
            ) from None
        if kind.needs_value and not value_property:
            raise ValidationFailed(f"a {kind.value} meter needs value_property", field="value_property")
        if not kind.needs_value and value_property:
            raise ValidationFailed(
                "a count meter counts events: it has no value_property", field="value_property"
            )
        for path in [*([value_property] if value_property else []), *filters, *group_by]:
            if not PATH_PATTERN.match(path):
                raise ValidationFailed(
                    f"{path[:70]!r} is not a property path like usage.tokens", field="filters"
                )
        for path, wanted in filters.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if not values or any(isinstance(v, dict | list) or v is None for v in values):
                raise ValidationFailed(
                    f"filter {path!r} must be a string, number or boolean, or a non-empty list of them",
                    field=f"filters.{path}",
                )
        if len(set(group_by)) != len(group_by):
            raise ValidationFailed("group_by names a property twice", field="group_by")
        if await self.repo.key_taken(key):
            raise Conflict(f"a meter {key!r} exists", code="meter_exists")
        now = self.clock.now()
        meter = Meter(
            id=new_id("mtr"),
            key=key,
            name=name or key,
            event_type=event_type,
            aggregation=kind.value,
            value_property=value_property,
            filters=dict(filters),
            group_by=list(group_by),
            created_at=now,
            updated_at=now,
            archived_at=None,
        )
        self.repo.add(meter)
        await self.repo.flush()
        return meter

    async def get(self, ref: str) -> Meter:
        meter = await self.repo.by_ref(ref)
        if meter is None:
            raise MeterNotFound(f"no meter {ref!r}")
        return meter

    async def page(self, *, after: str | None, limit: int, include_archived: bool) -> Page[Meter]:
        rows = await self.repo.page(after=after, limit=limit, include_archived=include_archived)
        return Page.from_overfetch(rows, limit)

    async def rename(self, ref: str, name: str) -> Meter:
        meter = await self.get(ref)
        meter.name = name
        meter.updated_at = self.clock.now()
        await self.repo.flush()
        return meter

    async def archive(self, ref: str) -> Meter:
        """Stop matching new events; the meter and its usage stay readable (invoices refer to them)."""
        meter = await self.get(ref)
        if meter.archived_at is None:
            meter.archived_at = meter.updated_at = self.clock.now()
            await self.repo.flush()
        return meter


# -- ingestion --------------------------------------------------------------------------------------


@dataclass(slots=True)
class EventInput:
    """One event as received (all optional here: a missing field is that item's error, not the batch's)."""

    id: str | None
    source: str | None
    type: str | None
    subject: str | None
    time: str | None
    data: dict[str, Any] | None


@dataclass(slots=True)
class ItemResult:
    index: int
    id: str | None
    source: str | None
    status: int
    duplicate: bool = False
    code: str | None = None
    detail: str | None = None
    field: str | None = None
    error: DomainError | None = None


@dataclass(slots=True)
class _Accepted:
    index: int
    event: NewEvent
    # (meter, its value) for every active meter the event matched
    contributions: list[tuple[d.Rule, Decimal | str | None]] = field(default_factory=list)


class CustomerUnknown(NotFound):
    code = "customer_not_found"


class UnknownEventType(ValidationFailed):
    code = "unknown_event_type"


class EventTimeInvalid(ValidationFailed):
    code = "invalid_time"


class EventInFuture(ValidationFailed):
    code = "time_in_future"


class EventTooLate(ValidationFailed):
    code = "time_too_old"


class MissingField(ValidationFailed):
    code = "missing_field"


class BatchRejected(ValidationFailed):
    code = "batch_rejected"


class UsageEventNotFound(NotFound):
    code = "usage_event_not_found"


class IngestService:
    def __init__(
        self,
        meters: MeterRepository,
        store: EventStore,
        clock: Clock,
        limits: IngestLimits | None = None,
    ) -> None:
        self.meters = meters
        self.store = store
        self.clock = clock
        self.limits = limits or IngestLimits()

    async def ingest(
        self, items: Sequence[EventInput], *, scope: str | None = None, atomic: bool = False
    ) -> list[ItemResult]:
        """Validate, deduplicate and store a batch; one result per item, in order. `scope`: the tenant a
        tenant key is limited to (other subjects read as unknown). `atomic`: any invalid item rejects the
        whole batch (BatchRejected, nothing stored); duplicates are never an error."""
        if len(items) > MAX_BATCH:
            raise ValidationFailed(f"at most {MAX_BATCH} events per request", field="events")
        received_at = self.clock.now()
        # Plain snapshots of the meters: the per-event loop reads them thousands of times per batch.
        by_type = {
            kind: [d.Rule.of(m) for m in meters]
            for kind, meters in (await self.meters.active_by_type()).items()
        }
        subjects = await self.store.subjects(i.subject for i in items if i.subject)
        if scope is not None:
            subjects = {name: s for name, s in subjects.items() if s.tenant_id == scope}
        clock_times = await self.store.clock_times(
            s.test_clock_id for s in subjects.values() if s.test_clock_id
        )

        results: list[ItemResult] = []
        accepted: dict[tuple[str, str, str], _Accepted] = {}
        for index, item in enumerate(items):
            result = ItemResult(index, item.id, item.source, 201)
            results.append(result)
            try:
                ready = self._validate(index, item, by_type, subjects, clock_times, received_at)
            except DomainError as exc:
                _fail(result, exc)
                continue
            if ready.event.key in accepted:  # the same event twice in one batch: the first one counts
                result.status, result.duplicate = 200, True
                continue
            accepted[ready.event.key] = ready

        if atomic and any(r.error is not None for r in results):
            raise BatchRejected(
                "the batch is atomic and some events are invalid: nothing was stored",
                errors=[
                    {"index": r.index, "code": r.code, "detail": r.detail, "field": r.field}
                    for r in results
                    if r.error is not None
                ],
            )
        new_keys = await self.store.claim_keys([a.event for a in accepted.values()], received_at)
        fresh = [a for key, a in accepted.items() if key in new_keys]
        for key, ready in accepted.items():
            if key not in new_keys:
                results[ready.index].status, results[ready.index].duplicate = 200, True
        await self.store.insert_events([a.event for a in fresh], received_at)
        await self.store.add_to_rollups(_partials(fresh))
        return results

    def _validate(
        self,
        index: int,
        item: EventInput,
        by_type: Mapping[str, list[d.Rule]],
        subjects: Mapping[str, Subject],
        clock_times: Mapping[str, datetime],
        received_at: datetime,
    ) -> _Accepted:
        for name in ("id", "source", "type", "subject"):
            if not getattr(item, name):
                raise MissingField(f"an event needs `{name}`", field=name)
        assert item.id and item.source and item.type and item.subject
        meters = by_type.get(item.type)
        if not meters:
            raise UnknownEventType(f"no meter counts events of type {item.type!r}", field="type")
        subject = subjects.get(item.subject)
        if subject is None:
            raise CustomerUnknown(f"no customer {item.subject!r}", field="subject")
        now = clock_times.get(subject.test_clock_id, received_at) if subject.test_clock_id else received_at
        at = _parse_time(item.time) if item.time is not None else now
        if at > now + self.limits.future_tolerance:
            raise EventInFuture(
                "the event's time is ahead of the customer's clock",
                field="time",
                customer_now=now.isoformat(),
            )
        if at < now - self.limits.late_grace:
            raise EventTooLate(
                f"the event is older than the grace window ({self.limits.late_grace.days} days)", field="time"
            )
        data = item.data or {}
        ready = _Accepted(
            index, NewEvent(subject.tenant_id, item.source, item.id, item.type, item.subject, at, data)
        )
        for rule in meters:
            if rule.matches(data):
                ready.contributions.append((rule, rule.value(data)))
        return ready

    # -- corrections ----------------------------------------------------------------------------------
    async def void(
        self, *, source: str, event_id: str, subject: str, scope: str | None = None
    ) -> tuple[Any, list[str]]:
        """Void one event (addressed by its subject, source and id): it stops counting everywhere, its
        roll-up buckets are recomputed, its dedup key stays (a re-send is still a duplicate; a correction
        is a new event with a new id). Voiding twice is a no-op."""
        subjects = await self.store.subjects([subject])
        found = subjects.get(subject)
        if found is None or (scope is not None and found.tenant_id != scope):
            raise CustomerUnknown(f"no customer {subject!r}", field="subject")
        key = await self.store.key(found.tenant_id, source, event_id)
        event = await self.store.event(found.tenant_id, key.time, source, event_id) if key else None
        if event is None:
            raise UsageEventNotFound(f"no usage event {source}/{event_id} for that customer")
        if event.voided_at is not None:
            return event, []
        await self.store.mark_voided(event, self.clock.now())
        touched = []
        bucket = d.bucket_of(event.time)
        for meter in await self.meters.of_type(event.type):
            if not d.Aggregation(meter.aggregation).rolls_up:
                continue
            partials: dict[str, d.Partial] = {}
            async for at, data in raw_events(
                self.store.session, found.tenant_id, meter.event_type, bucket, bucket + d.BUCKET
            ):
                if not d.matches(meter, data):
                    continue
                try:
                    value = d.meter_value(meter, data)
                except ValidationFailed:
                    continue
                partials.setdefault(d.group_key(meter, data), d.Partial()).add(
                    value if isinstance(value, Decimal) else None, at
                )
            await self.store.replace_bucket(meter.id, found.tenant_id, bucket, partials)
            touched.append(meter.id)
        await record_event(
            self.store.session,
            DomainEvent(
                "usage_event.voided",
                "usage_event",
                f"{source}/{event_id}",
                self.clock.now(),
                data={"source": source, "id": event_id, "time": event.time.isoformat(), "meters": touched},
                tenant_id=found.tenant_id,
            ),
        )
        return event, touched


def _fail(result: ItemResult, exc: DomainError) -> None:
    result.status = exc.status
    result.code = exc.error_code
    result.detail = exc.detail
    result.field = exc.extra.get("field")
    result.error = exc


def _parse_time(raw: str) -> datetime:
    try:
        at = ensure_utc(datetime.fromisoformat(raw))
    except (ValueError, OverflowError):
        raise EventTimeInvalid("time must be an ISO 8601 timestamp with a time zone", field="time") from None
    if not 1970 <= at.year <= 2999:
        raise EventTimeInvalid("time must be between the years 1970 and 2999", field="time")
    return at


def _partials(events: Sequence[_Accepted]) -> dict[RollupKey, d.Partial]:
    partials: dict[RollupKey, d.Partial] = {}
    for ready in events:
        event = ready.event
        bucket = d.bucket_of(event.time)
        for rule, value in ready.contributions:
            if not rule.kind.rolls_up:
                continue
            key = (rule.id, event.tenant_id, bucket, rule.group(event.data))
            partials.setdefault(key, d.Partial()).add(
                value if isinstance(value, Decimal) else None, event.time
            )
    return partials
