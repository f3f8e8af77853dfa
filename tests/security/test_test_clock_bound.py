"""One test-clock advance is bounded: at most `test_clock_max_advance_months` (24) calendar months.

A 200-year advance of a clock with a monthly subscription ran for 24 s (200 renewals and invoices, then
a 409); now it is refused at once with a 422 naming the latest time allowed, and nothing moves.
"""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Api


async def test_an_advance_past_24_months_is_refused_at_once_and_moves_nothing(api: Api, demo: Any) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-01-31T12:00:00Z"}))["id"]
    customer = await api.post("/v1/customers", {"name": "Far", "currency": "USD", "test_clock": clock})
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
    # The subscription's own events (the background relay may add provisioning events of its own).
    subscription_events = {"aggregate": sub["id"], "limit": 100}
    events_before = await api.get("/v1/events", params=subscription_events)

    started = time.monotonic()
    problem = await api.post(
        f"/v1/test_clocks/{clock}/advance", {"frozen_time": "2226-01-31T12:00:00Z"}, expect=422
    )
    assert time.monotonic() - started < 2
    assert (problem["code"], problem["field"]) == ("test_clock_advance_too_far", "frozen_time")
    # Jan 31 + 24 months: the last day of January two years on.
    assert problem["max_frozen_time"] == "2028-01-31T12:00:00Z"
    assert problem["detail"] == (
        "one advance moves a test clock at most 24 months: from 2026-01-31T12:00:00Z to "
        "2028-01-31T12:00:00Z at the latest; advance in several steps"
    )
    # One second past the bound is refused too; nothing moved.
    await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": "2028-01-31T12:00:01Z"}, expect=422)
    assert (await api.get(f"/v1/test_clocks/{clock}"))["frozen_time"] == "2026-01-31T12:00:00Z"
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["version"] == sub["version"]
    assert await api.get("/v1/events", params=subscription_events) == events_before

    # Exactly the bound is allowed, and runs the 24 renewals in between.
    moved = await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": "2028-01-31T12:00:00Z"})
    assert (moved["frozen_time"], moved["steps_applied"]) == ("2028-01-31T12:00:00Z", 24)
    renewed = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert renewed["current_period_start"] == "2028-01-31T12:00:00Z"
    # The bound counts from where the clock is now.
    problem = await api.post(
        f"/v1/test_clocks/{clock}/advance", {"frozen_time": "2030-02-01T00:00:00Z"}, expect=422
    )
    assert problem["max_frozen_time"] == "2030-01-31T12:00:00Z"
