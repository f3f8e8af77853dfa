"""One timestamp format everywhere: `YYYY-MM-DDTHH:MM:SS[.ffffff]Z`, as msgspec writes the API's datetime
fields. Metrics, event payloads and the privacy export said `+00:00` (Python's isoformat) before."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from tests.conftest import Api
from tests.provisioning.helpers import manual_settings, settle

TIMESTAMP_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}T")
ONE_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


def timestamps(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (path, string) in a JSON value that starts like a timestamp."""
    if isinstance(value, str) and TIMESTAMP_LIKE.match(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from timestamps(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from timestamps(item, f"{path}[{i}]")


def assert_one_format(document: Any, *, at_least: int) -> None:
    found = list(timestamps(document))
    assert len(found) >= at_least, found
    wrong = [(path, value) for path, value in found if not ONE_FORMAT.match(value)]
    assert wrong == []


async def test_metrics_event_payloads_and_the_privacy_export_write_z_timestamps(
    api: Api, app: Litestar, demo: Any
) -> None:
    clock = (await api.post("/v1/test_clocks", {"frozen_time": "2026-03-01T00:00:00Z"}))["id"]
    customer = await api.post("/v1/customers", {"name": "Zed", "currency": "USD", "test_clock": clock})
    sub = await api.post("/v1/subscriptions", {"customer": customer["id"], "price": "basic_monthly"})
    member = await api.post(
        f"/v1/customers/{customer['id']}/members",
        {"email": "zed@zed.example", "name": "Zed", "role": "viewer"},
    )
    await api.post(f"/v1/test_clocks/{clock}/advance", {"frozen_time": "2026-04-02T00:00:00Z"}, expect=201)
    await settle(api, app)

    metrics = await api.get(
        "/v1/metrics",
        params={"test_clock": clock, "start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z"},
    )
    assert (metrics["start"], metrics["end"]) == ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z")
    assert_one_format(metrics, at_least=2)
    mrr = await api.get("/v1/metrics/mrr", params={"test_clock": clock, "at": "2026-03-12T00:00:00Z"})
    assert mrr["at"] == "2026-03-12T00:00:00Z"
    cohorts = await api.get(
        "/v1/metrics/cohorts", params={"test_clock": clock, "start": "2026-03-01T00:00:00Z"}
    )
    assert_one_format(cohorts, at_least=2)

    events = await api.get("/v1/events", params={"aggregate": sub["id"], "limit": 100})
    renewed = next(e for e in events["data"] if e["type"] == "subscription.renewed")
    assert renewed["data"]["subscription"]["current_period_start"] == "2026-04-01T00:00:00Z"
    assert renewed["data"]["closed_period_start"] == "2026-03-01T00:00:00Z"
    assert_one_format(events, at_least=10)
    clock_events = await api.get("/v1/events", params={"aggregate": clock, "limit": 100})
    assert clock_events["data"][-1]["data"]["frozen_time"] == "2026-04-02T00:00:00Z"

    export = await api.get(f"/v1/users/{member['user']}/export")
    assert_one_format(export, at_least=3)
