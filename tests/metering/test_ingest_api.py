"""Issue 12: usage events over the API — dedup by (customer, source, id), per-item results, atomic
batches, time rules (late, future, test clocks), voids.
The existing per-subscription usage counter is covered by tests/scenarios/test_billing_stories.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.metering.helpers import customer, event, meter, send, total

JAN = ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")


async def test_ten_thousand_events_of_which_five_hundred_repeated_count_nine_thousand_five_hundred(
    api: Api, clock: FrozenClock
) -> None:
    c = await customer(api)
    await meter(api, "api_calls", "api_call")
    ids = list(range(9500)) + list(range(0, 9500, 19))  # 500 repeats of earlier events
    assert len(ids) == 10_000
    outcomes = {"accepted": 0, "duplicates": 0, "rejected": 0}
    for start in range(0, len(ids), 1000):
        batch = [event(i, c, time="2026-01-01T00:00:00Z") for i in ids[start : start + 1000]]
        result = await send(api, batch)
        for name in outcomes:
            outcomes[name] += result[name]
    assert outcomes == {"accepted": 9500, "duplicates": 500, "rejected": 0}
    assert await total(api, c, "api_calls", *JAN) == "9500"
    # A repeat is acknowledged as such, with 200, never a 422, never counted.
    again = await api.post("/v1/usage_events", event(7, c), expect=200)
    assert again["duplicate"] is True and again["status"] == 200
    assert await total(api, c, "api_calls", *JAN) == "9500"


async def test_one_bad_event_does_not_reject_the_others_and_each_says_why(api: Api) -> None:
    c = await customer(api)
    await meter(api, "tokens", "completion", "sum", value_property="tokens")
    batch: list[dict[str, Any]] = [
        event(1, c, type_="completion", tokens=10),
        event(2, c, type_="nobody_meters_this", tokens=1),
        event(3, c, type_="completion", tokens="lots"),
        event(4, "cus_nobody", type_="completion", tokens=1),
        event(5, c, type_="completion", time="2027-06-01T00:00:00Z", tokens=1),
        event(6, c, type_="completion", tokens="2.5"),
        event(7, c, type_="completion"),
        {"source": "app", "type": "completion", "subject": c, "data": {"tokens": 1}},
        event(9, c, type_="completion", time="yesterday", tokens=1),
        event(10, c, type_="completion", time="2025-06-01T00:00:00Z", tokens=1),
        event(1, c, type_="completion", tokens=10),
    ]
    result = await send(api, batch)
    answers = [(r["status"], r.get("code"), r.get("duplicate", False)) for r in result["data"]]
    assert answers == [
        (201, None, False),
        (422, "unknown_event_type", False),
        (422, "invalid_value", False),
        (404, "customer_not_found", False),
        (422, "time_in_future", False),
        (201, None, False),
        (422, "missing_value", False),
        (422, "missing_field", False),
        (422, "invalid_time", False),
        (422, "time_too_old", False),
        (200, None, True),
    ]
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (2, 1, 8)
    assert await total(api, c, "tokens", *JAN) == "12.5"


async def test_an_atomic_batch_with_a_bad_event_stores_nothing(api: Api) -> None:
    c = await customer(api)
    await meter(api, "api_calls", "api_call")
    bad = await api.post(
        "/v1/usage_events", {"events": [event(1, c), event(2, "cus_nobody")], "atomic": True}, expect=422
    )
    assert bad["code"] == "batch_rejected"
    assert bad["errors"] == [
        {"index": 1, "code": "customer_not_found", "detail": "no customer 'cus_nobody'", "field": "subject"}
    ]
    assert await total(api, c, "api_calls", *JAN) == "0"
    # Duplicates never make an atomic batch fail.
    await send(api, [event(1, c)], atomic=True)
    result = await send(api, [event(1, c), event(2, c)], atomic=True)
    assert [r["status"] for r in result["data"]] == [200, 201]
    assert await total(api, c, "api_calls", *JAN) == "2"


async def test_a_single_event_answers_with_its_own_status(api: Api) -> None:
    c = await customer(api, metadata={"external_key": "acme-42"})
    await meter(api, "api_calls", "api_call")
    created = await api.post("/v1/usage_events", event("a", "acme-42"), expect=201)
    assert created == {"index": 0, "status": 201, "id": "evt-a", "source": "app"}
    missing = await api.post("/v1/usage_events", event("b", "nobody"), expect=404)
    assert missing["code"] == "customer_not_found"
    assert await total(api, c, "api_calls", *JAN) == "1"


async def test_late_events_within_the_grace_window_land_in_their_own_period(
    api: Api, clock: FrozenClock
) -> None:
    c = await customer(api)
    await meter(api, "api_calls", "api_call")
    clock.advance(timedelta(days=40))  # now 2026-02-10
    result = await send(
        api,
        [
            event(1, c, time="2026-01-20T12:00:00Z"),  # 21 days late: accepted, counted in January
            event(2, c, time="2025-12-31T12:00:00Z"),  # 41 days late: past the 35-day grace
            event(3, c),  # no time: now
        ],
    )
    assert [r["status"] for r in result["data"]] == [201, 422, 201]
    assert await total(api, c, "api_calls", *JAN) == "1"
    assert await total(api, c, "api_calls", "2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z") == "1"


async def test_events_of_a_customer_on_a_test_clock_live_on_that_clock(api: Api) -> None:
    test_clock = await api.post("/v1/test_clocks", {"frozen_time": "2026-06-15T00:00:00Z"})
    c = await customer(api, test_clock=test_clock["id"])
    await meter(api, "api_calls", "api_call")
    # The wall clock says January; the customer's clock says June 15th.
    result = await send(
        api, [event(1, c), event(2, c, time="2026-06-14T23:00:00Z"), event(3, c, time="2026-06-16T00:00:00Z")]
    )
    assert [r["status"] for r in result["data"]] == [201, 201, 422]
    june = ("2026-06-01T00:00:00Z", "2026-07-01T00:00:00Z")
    assert await total(api, c, "api_calls", *june) == "2"
    # Without from/to: the customer's month so far, on its clock.
    usage = await api.get("/v1/usage", params={"customer": c})
    assert usage["start"] == "2026-06-01T00:00:00Z" and usage["end"] == "2026-06-15T00:00:00Z"
    assert usage["data"][0]["totals"] == [{"group": {}, "value": "1"}]


async def test_a_voided_event_stops_counting_and_a_replacement_counts(api: Api, clock: FrozenClock) -> None:
    clock.advance(timedelta(days=10))
    c = await customer(api)
    await meter(api, "tokens", "completion", "sum", value_property="tokens")
    await meter(api, "peak", "completion", "max", value_property="tokens")
    await send(
        api,
        [
            event(i, c, type_="completion", time="2026-01-05T10:00:00Z", tokens=t)
            for i, t in ((1, 100), (2, 7))
        ],
    )
    assert await total(api, c, "tokens", *JAN) == "107"
    assert await total(api, c, "peak", *JAN) == "100"
    voided = await api.post("/v1/usage_events/evt-1/void", {"source": "app", "subject": c}, expect=200)
    assert voided["voided_at"] is not None and sorted(voided["meters"]) == sorted(
        [m["id"] for m in (await api.get("/v1/meters"))["data"]]
    )
    assert await total(api, c, "tokens", *JAN) == "7"
    assert await total(api, c, "peak", *JAN) == "7"
    # Voiding again changes nothing; re-sending the voided id is still a duplicate; a new id counts.
    await api.post("/v1/usage_events/evt-1/void", {"source": "app", "subject": c}, expect=200)
    result = await send(
        api,
        [
            event(1, c, type_="completion", tokens=10),
            event("1-fix", c, type_="completion", time="2026-01-05T10:00:00Z", tokens=10),
        ],
    )
    assert [r["status"] for r in result["data"]] == [200, 201]
    assert await total(api, c, "tokens", *JAN) == "17"
    missing = await api.post("/v1/usage_events/evt-404/void", {"source": "app", "subject": c}, expect=404)
    assert missing["code"] == "usage_event_not_found"


async def test_a_tenant_key_reports_and_reads_only_its_own_usage(api: Api) -> None:
    mine, theirs = await customer(api, "Mine"), await customer(api, "Theirs")
    await meter(api, "api_calls", "api_call")
    key = await api.post(
        "/v1/api_keys", {"name": "app", "scopes": ["usage:write", "usage:read"], "customer": mine}
    )
    tenant = api.as_key(key["secret"])
    result = await send(tenant, [event(1, mine), event(2, theirs)])
    assert [r["status"] for r in result["data"]] == [201, 404]
    assert await total(tenant, mine, "api_calls", *JAN) == "1"
    await tenant.get("/v1/usage", params={"customer": theirs}, expect=404)
    assert await total(api, theirs, "api_calls", *JAN) == "0"
    refused = await tenant.post("/v1/usage_events/evt-1/void", {"source": "app", "subject": mine}, expect=403)
    assert refused["code"] == "platform_key_required"
