"""Roll-ups against a raw scan, differentially: random events (with random voids afterwards) for sum, max
and latest meters grouped by region, random ranges cut into hour/day windows of zones that make bucket
arithmetic hard (Amsterdam across the March DST change, Kolkata's +05:30, Kathmandu's +05:45). Every
answer read from the roll-ups equals the same question answered from the raw events (`raw=True`), and
the totals equal a plain Python reference computed from the events that are left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.customers.models import Customer
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.metering import domain as d
from gateway.metering.queries import usage_over
from gateway.metering.repository import EventStore, MeterRepository
from gateway.metering.service import EventInput, IngestLimits, IngestService, MeterService

# Two days either side of Amsterdam's spring-forward night (2026-03-29 02:00 -> 03:00).
BASE = datetime(2026, 3, 27, 22, 0, tzinfo=UTC)
SPAN = 3 * 24 * 3600
ZONES = ["Europe/Amsterdam", "Asia/Kolkata", "Asia/Kathmandu", "UTC"]
AGGREGATIONS = ["sum", "max", "latest"]

# (second after BASE, value, region); seconds unique so that `latest` has one answer.
events_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=SPAN),
        st.integers(min_value=-20, max_value=500),
        st.sampled_from(["eu", "us", "ap"]),
    ),
    min_size=1,
    max_size=30,
    unique_by=lambda e: e[0],
)


def reference(
    aggregation: str, events: list[tuple[int, int, str]], start: datetime, end: datetime
) -> dict[tuple[str, ...], Decimal]:
    """The answer by definition, from the events themselves."""
    by_group: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for s, v, g in events:
        if start <= BASE + timedelta(seconds=s) < end:
            by_group.setdefault((g,), []).append((s, v))
    if aggregation == "sum":
        return {g: Decimal(sum(v for _, v in rows)) for g, rows in by_group.items()}
    if aggregation == "max":
        return {g: Decimal(max(v for _, v in rows)) for g, rows in by_group.items()}
    return {g: Decimal(max(rows)[1]) for g, rows in by_group.items()}  # latest: the value at the last time


async def test_rollups_answer_what_a_raw_scan_answers_after_random_events_and_voids(
    db: Database, clock: FrozenClock
) -> None:
    examples = []

    @given(
        events=events_strategy,
        voids=st.lists(st.integers(min_value=0, max_value=29), max_size=6, unique=True),
        aggregation=st.sampled_from(AGGREGATIONS),
        zone_name=st.sampled_from(ZONES),
        window=st.sampled_from([d.Window.HOUR, d.Window.DAY]),
        cut_start=st.integers(min_value=0, max_value=SPAN),
        length=st.integers(min_value=1, max_value=SPAN),
    )
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def collect(**example: object) -> None:
        examples.append(example)

    collect()
    clock.set(BASE + timedelta(days=5))
    async with db.unit_of_work() as session:
        session.add(Customer(id="cus_diff", name="Diff", created_at=BASE, updated_at=BASE))
    for n, ex in enumerate(examples):
        events: list[tuple[int, int, str]] = ex["events"]  # type: ignore[assignment]
        aggregation: str = ex["aggregation"]  # type: ignore[assignment]
        async with db.unit_of_work() as session:
            await MeterService(MeterRepository(session), clock).create(
                key=f"d{n}",
                name=None,
                event_type=f"dt{n}",
                aggregation=aggregation,
                value_property="v",
                filters={},
                group_by=["region"],
            )
            ingest = IngestService(
                MeterRepository(session),
                EventStore(session),
                clock,
                IngestLimits(late_grace=timedelta(days=30)),
            )
            items = [
                EventInput(
                    f"x{n}-{i}",
                    "diff",
                    f"dt{n}",
                    "cus_diff",
                    (BASE + timedelta(seconds=s)).isoformat(),
                    {"v": v, "region": g},
                )
                for i, (s, v, g) in enumerate(events)
            ]
            assert [r.status for r in await ingest.ingest(items)] == [201] * len(items)
        voided = sorted(i for i in ex["voids"] if i < len(events))  # type: ignore[attr-defined]
        for i in voided:
            async with db.unit_of_work() as session:
                ingest = IngestService(MeterRepository(session), EventStore(session), clock)
                await ingest.void(source="diff", event_id=f"x{n}-{i}", subject="cus_diff")
        left = [e for i, e in enumerate(events) if i not in voided]
        start = BASE + timedelta(seconds=ex["cut_start"])  # type: ignore[arg-type]
        end = start + timedelta(seconds=ex["length"])  # type: ignore[arg-type]
        zone = ZoneInfo(ex["zone_name"])  # type: ignore[arg-type]
        async with db.unit_of_work() as session:
            asked = dict(
                tenant_id="cus_diff",
                meter=f"d{n}",
                start=start,
                end=end,
                window=ex["window"],
                tz=zone,
                group_by=["region"],
            )
            rolled = await usage_over(session, **asked)  # type: ignore[arg-type]
            raw = await usage_over(session, **asked, raw=True)  # type: ignore[arg-type]
        assert [(w.start, w.end, w.values) for w in rolled.windows] == [
            (w.start, w.end, w.values) for w in raw.windows
        ], ex
        assert rolled.totals == raw.totals == reference(aggregation, left, start, end), ex
