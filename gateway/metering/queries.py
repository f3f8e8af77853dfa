"""Reading usage: one meter, one customer, a time range, optionally cut into windows of a time zone and
split by group-by properties. This is the function billing and the entitlements engine call.

Where numbers come from: the 15-minute roll-ups for every whole bucket of the range, the raw events for
the parts of the range that are not whole buckets (a `from` at 10:07, an odd historical offset) and for
`unique_count` meters (distinct values do not add up across buckets). Both paths go through the same
rules (`gateway.metering.domain`), so they agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import ensure_utc
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.metering import domain as d
from gateway.metering.models import Meter, UsageEvent, UsageRollup

GroupKey = tuple[str, ...]
_UTC = ZoneInfo("UTC")


class MeterNotFound(NotFound):
    code = "meter_not_found"


@dataclass(frozen=True, slots=True)
class UsageWindow:
    start: datetime
    end: datetime
    values: dict[GroupKey, Decimal]


@dataclass(frozen=True, slots=True)
class Usage:
    meter: Meter
    windows: list[UsageWindow]
    # Over the whole range: the sum of the windows for count and sum, their max for max; computed over
    # the range itself for latest and unique_count.
    totals: dict[GroupKey, Decimal] = field(default_factory=dict)


async def get_meter(session: AsyncSession, meter: Meter | str) -> Meter:
    """A meter by row, id or key (archived meters too: old periods are still billed from them)."""
    if isinstance(meter, Meter):
        return meter
    row = (await session.execute(select(Meter).where((Meter.key == meter) | (Meter.id == meter)))).scalar()
    if row is None:
        raise MeterNotFound(f"no meter {meter!r}", field="meter")
    return row


async def aggregate(
    session: AsyncSession,
    *,
    tenant_id: str,
    meter: Meter | str,
    start: datetime,
    end: datetime,
    group_by: Sequence[str] = (),
) -> dict[GroupKey, Decimal]:
    """The meter's value for one customer over [start, end), per group (keys: the values of `group_by`
    properties in that order; `()` without group_by). Groups with no events are absent; with no events
    at all the result is `{}` (callers read `.get((), Decimal(0))`). Voided events never count."""
    usage = await usage_over(
        session, tenant_id=tenant_id, meter=meter, start=start, end=end, group_by=group_by
    )
    return usage.totals


async def usage_over(
    session: AsyncSession,
    *,
    tenant_id: str,
    meter: Meter | str,
    start: datetime,
    end: datetime,
    window: d.Window | None = None,
    tz: ZoneInfo = _UTC,
    group_by: Sequence[str] = (),
    raw: bool = False,
) -> Usage:
    """Windows of [start, end) in `tz` with each window's value per group, and the totals.
    `raw=True` ignores the roll-ups (benchmarks and checks compare both)."""
    row = await get_meter(session, meter)
    start, end = ensure_utc(start), ensure_utc(end)
    aggregation = d.Aggregation(row.aggregation)
    picks = _group_positions(row, group_by)
    spans = d.windows(start, end, window, tz)
    starts = [s for s, _ in spans]
    partials: list[dict[GroupKey, d.Partial]] = [{} for _ in spans]

    if aggregation.rolls_up and not raw:
        whole = [
            (d.bucket_of(s) if d.on_bucket(s) else d.bucket_of(s) + d.BUCKET, d.bucket_of(e))
            for s, e in spans
        ]
        # Roll-ups for the whole buckets of the range, raw events for what is left at the edges.
        lo, hi = whole[0][0], whole[-1][1]
        if lo < hi:
            await _from_rollups(session, row, tenant_id, lo, hi, starts, picks, partials)
        for edge_start, edge_end in _edges(start, end, lo, hi):
            await _from_raw(session, row, tenant_id, edge_start, edge_end, starts, picks, partials)
    else:
        await _from_raw(
            session, row, tenant_id, start, end, starts, picks, partials, distinct=not aggregation.rolls_up
        )

    windows_out = [
        UsageWindow(s, e, {g: _result(aggregation, p) for g, p in part.items()})
        for (s, e), part in zip(spans, partials, strict=True)
    ]
    if aggregation in (d.Aggregation.COUNT, d.Aggregation.SUM, d.Aggregation.MAX):
        groups = {g for w in windows_out for g in w.values}
        totals = {
            g: d.combine(aggregation, [w.values[g] for w in windows_out if g in w.values]) for g in groups
        }
    elif aggregation is d.Aggregation.LATEST:
        merged: dict[GroupKey, d.Partial] = {}
        for part in partials:
            for g, p in part.items():
                merged.setdefault(g, d.Partial()).merge(p)
        totals = {g: p.result(aggregation) for g, p in merged.items()}
    else:  # unique_count over the range is its own distinct count
        whole_range: list[dict[GroupKey, d.Partial]] = [{}]
        await _from_raw(session, row, tenant_id, start, end, [start], picks, whole_range, distinct=True)
        totals = {g: _result(aggregation, p) for g, p in whole_range[0].items()}
    return Usage(row, windows_out, totals)


# -- internals ------------------------------------------------------------------------------------------


class _Distinct(d.Partial):
    """A partial that counts distinct values (unique_count)."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()


def _result(aggregation: d.Aggregation, partial: d.Partial) -> Decimal:
    if isinstance(partial, _Distinct):
        return Decimal(len(partial.seen))
    return partial.result(aggregation)


def _group_positions(meter: Meter, group_by: Sequence[str]) -> list[int]:
    unknown = [g for g in group_by if g not in meter.group_by]
    if unknown:
        raise ValidationFailed(
            f"meter {meter.key!r} groups by {list(meter.group_by)}, not {unknown}",
            field="group_by",
            code="unknown_group_by",
        )
    return [list(meter.group_by).index(g) for g in group_by]


def _project(key: str, picks: list[int]) -> GroupKey:
    values = d.parse_group_key(key)
    return tuple(values[i] for i in picks)


def _edges(start: datetime, end: datetime, lo: datetime, hi: datetime) -> list[tuple[datetime, datetime]]:
    if lo >= hi:
        return [(start, end)]
    return [(a, b) for a, b in ((start, lo), (hi, end)) if a < b]


async def _from_rollups(
    session: AsyncSession,
    meter: Meter,
    tenant_id: str,
    lo: datetime,
    hi: datetime,
    starts: list[datetime],
    picks: list[int],
    partials: list[dict[GroupKey, d.Partial]],
) -> None:
    r = UsageRollup
    query = select(
        r.bucket_start, r.group_key, r.event_count, r.value_sum, r.value_max, r.latest_value, r.latest_time
    ).where(r.meter_id == meter.id, r.tenant_id == tenant_id, r.bucket_start >= lo, r.bucket_start < hi)
    for bucket, key, count, total, maximum, latest, latest_at in await session.execute(query):
        if not count:
            continue
        index = d.window_index(starts, bucket)
        part = partials[index].setdefault(_project(key, picks), d.Partial())
        part.merge(d.Partial(count, Decimal(total), _dec(maximum), _dec(latest), latest_at))


def _dec(value: object) -> Decimal | None:
    return None if value is None else Decimal(str(value))


async def raw_events(
    session: AsyncSession, tenant_id: str, event_type: str, start: datetime, end: datetime
) -> AsyncIterator[tuple[datetime, dict[str, object]]]:
    """(time, data) of the customer's counted (not voided) events of a type in [start, end)."""
    e = UsageEvent
    query = (
        select(e.time, e.data)
        .where(e.tenant_id == tenant_id, e.time >= start, e.time < end, e.type == event_type)
        .where(e.voided_at.is_(None))
        .execution_options(yield_per=5000)
    )
    result = await session.stream(query)
    async for at, data in result:
        yield at, data


async def _from_raw(
    session: AsyncSession,
    meter: Meter,
    tenant_id: str,
    start: datetime,
    end: datetime,
    starts: list[datetime],
    picks: list[int],
    partials: list[dict[GroupKey, d.Partial]],
    *,
    distinct: bool = False,
) -> None:
    async for at, data in raw_events(session, tenant_id, meter.event_type, start, end):
        if not d.matches(meter, data):
            continue
        try:
            value = d.meter_value(meter, data)
        except ValidationFailed:
            continue  # stored for another meter of the type, not countable by this one
        index = d.window_index(starts, at)
        group = _project(d.group_key(meter, data), picks)
        if distinct:
            part = partials[index].setdefault(group, _Distinct())
            assert isinstance(part, _Distinct)
            part.seen.add(str(value))
            continue
        part = partials[index].setdefault(group, d.Partial())
        part.add(value if isinstance(value, Decimal) else None, at)
