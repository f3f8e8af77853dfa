"""Usage windows in the caller's time zone: the DST story over the API, and property tests that totals
over windows equal the total over the range (pure rules, then the store on both backends, roll-ups and
raw events agreeing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.metering import domain as d
from gateway.metering.queries import aggregate, usage_over
from gateway.metering.repository import EventStore, MeterRepository
from gateway.metering.service import EventInput, IngestLimits, IngestService, MeterService
from tests.conftest import Api
from tests.metering.helpers import customer, event, meter, send

AMS = "Europe/Amsterdam"
ZONES = [
    "UTC",
    "Europe/Amsterdam",
    "America/New_York",
    "America/Santiago",
    "America/St_Johns",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
]


async def _days(api: Api, c: str, start: str, end: str, **params: str) -> dict[str, str]:
    usage = await api.get(
        "/v1/usage",
        params={
            "customer": c,
            "meter": "api_calls",
            "from": start,
            "to": end,
            "window": "day",
            "tz": AMS,
            **params,
        },
    )
    zone = ZoneInfo(AMS)
    days = {}
    for w in usage["data"][0]["windows"]:
        local = datetime.fromisoformat(w["start"]).astimezone(zone)
        days[local.date().isoformat()] = w["values"][0]["value"] if w["values"] else "0"
    assert sum(Decimal(v) for v in days.values()) == Decimal(usage["data"][0]["totals"][0]["value"])
    return days


async def test_an_event_at_0230_on_the_nights_the_clocks_change_lands_on_its_local_day(
    api: Api, clock: FrozenClock
) -> None:
    c = await customer(api)
    await meter(api, "api_calls", "api_call")
    # Spring forward, 29 March 2026: 02:00 CET becomes 03:00 CEST. "02:30+01:00" is the instant the
    # clocks showed 03:30 CEST; 00:30 CET is still 28 March in UTC.
    clock.set(datetime(2026, 3, 30, tzinfo=UTC))
    await send(
        api,
        [
            event("s1", c, time="2026-03-29T02:30:00+01:00"),
            event("s2", c, time="2026-03-29T00:30:00+01:00"),  # 23:30Z on the 28th
            event("s3", c, time="2026-03-28T23:59:00+01:00"),
        ],
    )
    days = await _days(api, c, "2026-03-27T23:00:00Z", "2026-03-29T22:00:00Z")
    assert days == {"2026-03-28": "1", "2026-03-29": "2"}
    # Fall back, 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice, both on the
    # 25th; 23:30 CET on the 25th is 22:30Z (a fixed +02:00 would have put it on the 26th).
    clock.set(datetime(2026, 10, 27, tzinfo=UTC))
    await send(
        api,
        [
            event("f1", c, time="2026-10-25T02:30:00+02:00"),
            event("f2", c, time="2026-10-25T02:30:00+01:00"),
            event("f3", c, time="2026-10-25T23:30:00+01:00"),
            event("f4", c, time="2026-10-24T23:30:00+02:00"),
        ],
    )
    days = await _days(api, c, "2026-10-23T22:00:00Z", "2026-10-26T23:00:00Z")
    assert days == {"2026-10-24": "1", "2026-10-25": "3", "2026-10-26": "0"}
    # The 25th is a 25-hour day with two windows for the hour starting at 02:00 local.
    usage = await api.get(
        "/v1/usage",
        params={
            "customer": c,
            "meter": "api_calls",
            "window": "hour",
            "tz": AMS,
            "from": "2026-10-24T22:00:00Z",
            "to": "2026-10-25T23:00:00Z",
        },
    )
    windows = usage["data"][0]["windows"]
    assert len(windows) == 25
    two_am = [w for w in windows if datetime.fromisoformat(w["start"]).astimezone(ZoneInfo(AMS)).hour == 2]
    assert [w["values"] for w in two_am] == [[{"group": {}, "value": "1"}], [{"group": {}, "value": "1"}]]


# -- the rules, pure ---------------------------------------------------------------------------------------

START = datetime(2026, 1, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=400 * 24 * 3600).map(lambda s: START + timedelta(seconds=s))


@given(
    times=st.lists(instants, max_size=60),
    bounds=st.tuples(instants, instants).filter(lambda b: b[0] != b[1]).map(sorted),
    zone_name=st.sampled_from(ZONES),
    window=st.sampled_from([d.Window.HOUR, d.Window.DAY, d.Window.MONTH, None]),
)
@settings(max_examples=150, deadline=None)
def test_windows_partition_the_range_on_local_boundaries(
    times: list[datetime], bounds: list[datetime], zone_name: str, window: d.Window | None
) -> None:
    start, end = bounds
    if window is d.Window.HOUR and end - start > timedelta(days=200):
        end = start + timedelta(days=200)
    zone = ZoneInfo(zone_name)
    spans = d.windows(start, end, window, zone)
    assert spans[0][0] == start and spans[-1][1] == end
    assert all(a < b for a, b in spans) and all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    for cut, _ in spans[1:]:
        local = cut.astimezone(zone)
        assert (local.minute, local.second) == (0, 0) or (window is d.Window.HOUR and local.minute % 15 == 0)
        if window in (d.Window.DAY, d.Window.MONTH):
            assert (local.hour, local.minute) == (0, 0) or _midnight_skipped(local)
        if window is d.Window.MONTH:
            assert local.day == 1
    inside = [t for t in times if start <= t < end]
    starts = [a for a, _ in spans]
    counts = [0] * len(spans)
    for t in inside:
        counts[d.window_index(starts, t)] += 1
    assert sum(counts) == len(inside)
    assert d.combine(d.Aggregation.COUNT, [Decimal(n) for n in counts]) == len(inside)


def _midnight_skipped(local: datetime) -> bool:
    """Zones whose clocks jump over midnight (e.g. Santiago) start that day at the jump."""
    # One real second earlier (through UTC: arithmetic on an aware local time is wall-clock arithmetic).
    before = (local.astimezone(UTC) - timedelta(seconds=1)).astimezone(local.tzinfo)
    return before.date() < local.date() and local.hour <= 1


# -- the store, on both backends ----------------------------------------------------------------------------

event_sets = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=60 * 24 * 3600),  # seconds after the range start
        st.integers(min_value=1, max_value=50),  # value
        st.sampled_from(["eu", "us"]),  # group
    ),
    min_size=1,
    max_size=40,
)


async def test_totals_over_windows_equal_the_total_over_the_range_in_the_store(
    db: Database, clock: FrozenClock
) -> None:
    examples: list[tuple[list[tuple[int, int, str]], str, d.Window, int, int]] = []

    @given(
        events=event_sets,
        zone_name=st.sampled_from(ZONES),
        window=st.sampled_from([d.Window.HOUR, d.Window.DAY, d.Window.MONTH]),
        cut_start=st.integers(min_value=0, max_value=5 * 24 * 3600),
        cut_end=st.integers(min_value=0, max_value=5 * 24 * 3600),
    )
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def collect(
        events: list[tuple[int, int, str]], zone_name: str, window: d.Window, cut_start: int, cut_end: int
    ) -> None:
        examples.append((events, zone_name, window, cut_start, cut_end))

    collect()
    base = datetime(2026, 3, 1, tzinfo=UTC)
    clock.set(base + timedelta(days=61))
    async with db.unit_of_work() as session:
        from gateway.customers.models import Customer

        session.add(Customer(id="cus_prop", name="Prop", created_at=base, updated_at=base))
    for n, (events, zone_name, window, cut_start, cut_end) in enumerate(examples):
        async with db.unit_of_work() as session:
            meters = MeterService(MeterRepository(session), clock)
            await meters.create(
                key=f"m{n}",
                name=None,
                event_type=f"t{n}",
                aggregation="sum",
                value_property="v",
                filters={},
                group_by=["region"],
            )
            await meters.create(
                key=f"c{n}",
                name=None,
                event_type=f"t{n}",
                aggregation="count",
                value_property=None,
                filters={},
                group_by=[],
            )
            limits = IngestLimits(late_grace=timedelta(days=90))
            ingest = IngestService(MeterRepository(session), EventStore(session), clock, limits)
            items = [
                EventInput(
                    f"e{n}-{i}",
                    "prop",
                    f"t{n}",
                    "cus_prop",
                    (base + timedelta(seconds=s)).isoformat(),
                    {"v": v, "region": g},
                )
                for i, (s, v, g) in enumerate(events)
            ]
            results = await ingest.ingest(items)
            assert all(r.status == 201 for r in results)
        start = base + timedelta(seconds=cut_start)
        end = base + timedelta(days=60) - timedelta(seconds=cut_end)
        expected: dict[tuple[str, ...], Decimal] = {}
        for s, v, g in events:
            if start <= base + timedelta(seconds=s) < end:
                expected[(g,)] = expected.get((g,), Decimal(0)) + v
        async with db.unit_of_work() as session:
            zone = ZoneInfo(zone_name)
            rolled = await usage_over(
                session,
                tenant_id="cus_prop",
                meter=f"m{n}",
                start=start,
                end=end,
                window=window,
                tz=zone,
                group_by=["region"],
            )
            raw = await usage_over(
                session,
                tenant_id="cus_prop",
                meter=f"m{n}",
                start=start,
                end=end,
                window=window,
                tz=zone,
                group_by=["region"],
                raw=True,
            )
            summed: dict[tuple[str, ...], Decimal] = {}
            for w in rolled.windows:
                for g, value in w.values.items():
                    summed[g] = summed.get(g, Decimal(0)) + value
            assert summed == rolled.totals == expected, (zone_name, window)
            assert [w.values for w in raw.windows] == [w.values for w in rolled.windows]
            count = await aggregate(session, tenant_id="cus_prop", meter=f"c{n}", start=start, end=end)
            assert count.get((), Decimal(0)) == sum(
                1 for s, _, _ in events if start <= base + timedelta(seconds=s) < end
            )
