"""Metering rules, pure: what an event contributes to a meter, how contributions combine, and how a time
range is cut into hour/day/month windows of a time zone. Ingestion (roll-ups), raw queries and void
recomputation all go through these functions, so they can never disagree about a value."""

from __future__ import annotations

import enum
import itertools
import json
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from gateway.kernel.errors import ValidationFailed

# Roll-up bucket: every UTC offset in use is a multiple of 15 minutes, so any zone's hour/day/month
# boundary is a bucket boundary (checked when windows are cut; odd historical offsets fall back to raw).
BUCKET = timedelta(minutes=15)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MAX_WINDOWS = 10_000


class Aggregation(enum.StrEnum):
    COUNT = "count"
    SUM = "sum"
    MAX = "max"
    UNIQUE_COUNT = "unique_count"
    LATEST = "latest"

    @property
    def needs_value(self) -> bool:
        return self is not Aggregation.COUNT

    @property
    def numeric(self) -> bool:
        return self in (Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST)

    @property
    def rolls_up(self) -> bool:
        """Whether per-bucket partial results combine into a window's result (distinct counts do not)."""
        return self is not Aggregation.UNIQUE_COUNT


class Window(enum.StrEnum):
    HOUR = "hour"
    DAY = "day"
    MONTH = "month"


class MeterSpec(Protocol):
    """The parts of a meter the rules need (a `Meter` row is one)."""

    @property
    def id(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def event_type(self) -> str: ...
    @property
    def aggregation(self) -> str: ...
    @property
    def value_property(self) -> str | None: ...
    @property
    def filters(self) -> Mapping[str, Any]: ...
    @property
    def group_by(self) -> Sequence[Any]: ...


class BadValue(ValidationFailed):
    code = "invalid_value"


class MissingValue(ValidationFailed):
    code = "missing_value"


_MISSING = object()


def extract(data: Any, path: str) -> Any:
    """The value at a dot path ("usage.tokens") of an event's data, or `_MISSING`."""
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def as_text(value: Any) -> str:
    """The text form used to compare filter values and to name groups (JSON spelling for non-strings)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def matches(meter: MeterSpec, data: Any) -> bool:
    for path, wanted in meter.filters.items():
        found = extract(data, path)
        if found is _MISSING:
            return False
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if as_text(found) not in {as_text(w) for w in allowed}:
            return False
    return True


def group_key(meter: MeterSpec, data: Any) -> str:
    """The JSON array of the meter's group-by values ("" for an absent property), "[]" without groups."""
    values = []
    for path in meter.group_by:
        found = extract(data, path)
        values.append("" if found is _MISSING or found is None else as_text(found))
    return json.dumps(values, separators=(",", ":"))


def parse_group_key(key: str) -> tuple[str, ...]:
    return tuple(json.loads(key))


def meter_value(meter: MeterSpec, data: Any) -> Decimal | str | None:
    """What one matching event contributes: None for `count`, a Decimal for the numeric aggregations,
    the distinct key's text for `unique_count`. Refuses what cannot be counted (per-item 422 reasons)."""
    aggregation = Aggregation(meter.aggregation)
    if not aggregation.needs_value:
        return None
    assert meter.value_property is not None  # a meter that needs a value has a property (checked at create)
    found = extract(data, meter.value_property)
    if found is _MISSING or found is None:
        raise MissingValue(
            f"meter {meter.key!r} needs data.{meter.value_property}",
            field=f"data.{meter.value_property}",
        )
    if aggregation is Aggregation.UNIQUE_COUNT:
        if isinstance(found, dict | list):
            raise BadValue("a unique_count value must be a string or a number", field=meter.value_property)
        return as_text(found)
    return to_decimal(found, meter.value_property)


def to_decimal(found: Any, field: str) -> Decimal:
    # bool is an int in Python; `true` is no quantity.
    if isinstance(found, bool) or not isinstance(found, int | float | str):
        raise BadValue(f"data.{field} must be a number", field=f"data.{field}")
    try:
        value = Decimal(str(found).strip())
    except InvalidOperation:
        raise BadValue(
            f"data.{field} must be a number, not {str(found)[:40]!r}", field=f"data.{field}"
        ) from None
    if not value.is_finite() or abs(value) >= Decimal(10) ** 29:
        raise BadValue(f"data.{field} must be a finite number below 1e29", field=f"data.{field}")
    return value


@dataclass(frozen=True, slots=True)
class Rule:
    """A meter's definition as plain values, for the ingestion hot loop: reading a mapped ORM attribute
    costs a descriptor call, and a batch of 1,000 events against two meters reads them ~10,000 times.
    The filters' allowed texts are computed once instead of per event. Same answers as the module
    functions (`matches`, `group_key`, `meter_value`), which it calls or mirrors."""

    id: str
    key: str
    event_type: str
    aggregation: str
    value_property: str | None
    filters: Mapping[str, Any]
    group_by: Sequence[Any]
    kind: Aggregation
    allowed: tuple[tuple[str, frozenset[str]], ...]

    @classmethod
    def of(cls, meter: MeterSpec) -> Rule:
        allowed = tuple(
            (path, frozenset(as_text(w) for w in (wanted if isinstance(wanted, list) else [wanted])))
            for path, wanted in meter.filters.items()
        )
        return cls(
            meter.id,
            meter.key,
            meter.event_type,
            meter.aggregation,
            meter.value_property,
            dict(meter.filters),
            tuple(meter.group_by),
            Aggregation(meter.aggregation),
            allowed,
        )

    def matches(self, data: Any) -> bool:
        for path, texts in self.allowed:
            found = extract(data, path)
            if found is _MISSING or as_text(found) not in texts:
                return False
        return True

    def value(self, data: Any) -> Decimal | str | None:
        return None if self.kind is Aggregation.COUNT else meter_value(self, data)

    def group(self, data: Any) -> str:
        return group_key(self, data) if self.group_by else "[]"


def bucket_of(at: datetime) -> datetime:
    """The start of the 15-minute (UTC) bucket holding `at`."""
    offset = (at - _EPOCH) // BUCKET
    return _EPOCH + offset * BUCKET


def on_bucket(at: datetime) -> bool:
    return bucket_of(at) == at


# -- partial results ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Partial:
    """Count, sum, max and latest of some events of one meter (a bucket, a window, a range)."""

    count: int = 0
    total: Decimal = Decimal(0)
    maximum: Decimal | None = None
    latest: Decimal | None = None
    latest_at: datetime | None = None

    def add(self, value: Decimal | None, at: datetime) -> None:
        self.count += 1
        if value is not None:
            self.total += value
            self.maximum = value if self.maximum is None else max(self.maximum, value)
            if self.latest_at is None or at >= self.latest_at:
                self.latest, self.latest_at = value, at

    def merge(self, other: Partial) -> None:
        self.count += other.count
        self.total += other.total
        if other.maximum is not None:
            self.maximum = other.maximum if self.maximum is None else max(self.maximum, other.maximum)
        if other.latest_at is not None and (self.latest_at is None or other.latest_at >= self.latest_at):
            self.latest, self.latest_at = other.latest, other.latest_at

    def result(self, aggregation: Aggregation) -> Decimal:
        if aggregation is Aggregation.COUNT:
            return Decimal(self.count)
        if aggregation is Aggregation.SUM:
            return self.total
        if aggregation is Aggregation.MAX:
            return self.maximum if self.maximum is not None else Decimal(0)
        if aggregation is Aggregation.LATEST:
            return self.latest if self.latest is not None else Decimal(0)
        raise ValueError(f"{aggregation} has no partial form")


def combine(aggregation: Aggregation, values: Sequence[Decimal]) -> Decimal:
    """The result over a range from the results of its windows: count and sum add up (so a total always
    equals the sum of its windows), max is the largest; `latest` and `unique_count` are not derivable
    from window results and are computed over the range itself by the caller."""
    if aggregation in (Aggregation.COUNT, Aggregation.SUM):
        return sum(values, Decimal(0))
    if aggregation is Aggregation.MAX:
        return max(values, default=Decimal(0))
    raise ValueError(f"{aggregation} is computed over the range, not from its windows")


# -- windows ----------------------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        raise ValidationFailed(
            f"unknown time zone {name[:64]!r}", field="tz", code="unknown_time_zone"
        ) from None


def windows(
    start: datetime, end: datetime, window: Window | None, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut at the window boundaries of `tz` (local midnights, first days of months, full
    hours), as UTC instants; the first and last window are clipped to the range. DST is handled by
    computing boundaries in local time and converting each (a 23- or 25-hour day is one day)."""
    if end <= start:
        raise ValidationFailed("`to` must be after `from`", field="to")
    if window is None:
        return [(start, end)]
    cuts = _boundaries(start, end, window, tz)
    edges = [start, *cuts, end]
    if len(edges) - 1 > MAX_WINDOWS:
        raise ValidationFailed(
            f"that range has more than {MAX_WINDOWS} {window.value} windows: narrow it",
            field="window",
            code="too_many_windows",
        )
    return list(itertools.pairwise(edges))


def _boundaries(start: datetime, end: datetime, window: Window, tz: ZoneInfo) -> list[datetime]:
    if window is Window.HOUR:
        return _hour_boundaries(start, end, tz)
    local = start.astimezone(tz)
    day = local.date()
    cuts: list[datetime] = []
    guard = 0
    while True:
        day = _next_day(day) if window is Window.DAY else _next_month(day)
        at = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
        if at >= end:
            return cuts
        if at > start:
            cuts.append(at)
        guard += 1
        if guard > MAX_WINDOWS + 2:
            raise ValidationFailed(
                f"that range has more than {MAX_WINDOWS} windows", field="window", code="too_many_windows"
            )


def _next_day(day: date) -> date:
    return day + timedelta(days=1)


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _hour_boundaries(start: datetime, end: datetime, tz: ZoneInfo) -> list[datetime]:
    """Instants at which the local clock shows a full hour. Between offset changes, that is every hour
    from the first one; at a change the next full local hour is found again from the new offset."""
    if (end - start) / timedelta(hours=1) > MAX_WINDOWS + 1:
        raise ValidationFailed(
            f"that range has more than {MAX_WINDOWS} hour windows", field="window", code="too_many_windows"
        )
    cuts: list[datetime] = []
    at = start
    while True:
        offset = at.astimezone(tz).utcoffset() or timedelta(0)
        local = at + offset
        next_local_hour = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        candidate = next_local_hour - offset
        if (candidate.astimezone(tz).utcoffset() or timedelta(0)) != offset:
            # An offset change lies before the candidate: the change instant itself may be a full hour
            # (02:00 → 03:00), otherwise continue from it with the new offset.
            change = _offset_change(at, candidate, tz)
            if change.astimezone(tz).minute == 0 and change.astimezone(tz).second == 0:
                candidate = change
            else:
                at = change
                continue
        if candidate >= end:
            return cuts
        cuts.append(candidate)
        at = candidate


def _offset_change(after: datetime, before: datetime, tz: ZoneInfo) -> datetime:
    """The first instant in (after, before] whose offset differs from `after`'s (bisected to 1 s)."""
    offset = after.astimezone(tz).utcoffset()
    lo, hi = after, before
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(tz).utcoffset() == offset:
            lo = mid
        else:
            hi = mid
    return hi


def window_index(starts: Sequence[datetime], at: datetime) -> int:
    """Which window (by their sorted starts) holds `at`."""
    return bisect_right(starts, at) - 1
