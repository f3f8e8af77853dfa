"""Per-endpoint ordering, resend of one delivery and replay of a range of events, delivered to a real
HTTP receiver on a loopback port that verifies every signature."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar import Litestar

from gateway.config import Settings
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.notifications.receiver import Receiver, ReceiverServer
from tests.provisioning.helpers import manual_settings, settle


@pytest.fixture
def settings() -> Settings:
    return manual_settings(
        webhook_backoff_seconds=30.0,
        webhook_max_attempts=3,
        webhook_allow_http=True,
        webhook_allow_private_targets=True,
    )


async def deliveries(api: Api, endpoint: str) -> list[dict[str, Any]]:
    return list(
        (await api.get(f"/v1/webhook_endpoints/{endpoint}/deliveries", params={"limit": 100}))["data"]
    )


async def member_events(api: Api) -> list[dict[str, Any]]:
    return list((await api.get("/v1/events", params={"type": "member.added", "limit": 100}))["data"])


async def three_members(api: Api, name: str = "Ordered") -> str:
    customer = (await api.post("/v1/customers", {"name": name}))["id"]
    for n in range(3):
        await api.post(f"/v1/customers/{customer}/members", {"email": f"m{n}@{name.lower()}.example"})
    return str(customer)


async def test_a_failing_delivery_holds_the_later_ones_of_its_endpoint(
    api: Api, app: Litestar, clock: FrozenClock
) -> None:
    receiver = Receiver(fail_first=1)  # every event: 500 once, then 204
    with ReceiverServer(receiver) as server:
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["member.*"]}
        )
        receiver.secret = endpoint["secret"]
        await three_members(api)
        e1, e2, e3 = [e["id"] for e in await member_events(api)]

        await settle(api, app)  # e1: 500; e2 and e3 wait behind it (not attempted)
        assert [r.webhook_id for r in receiver.received] == [e1]
        log = {d["event"]: d for d in await deliveries(api, endpoint["id"])}
        assert [(log[e]["status"], log[e]["attempts"]) for e in (e1, e2, e3)] == [
            ("pending", 1),
            ("pending", 0),
            ("pending", 0),
        ]
        await settle(api, app)  # e1 is not due: nothing goes out, e2 does not overtake it
        assert len(receiver.received) == 1

        for _ in range(3):
            clock.advance(timedelta(seconds=30))
            await settle(api, app)
    # In event order, each once failed then delivered.
    assert [(r.webhook_id, r.status) for r in receiver.received] == [
        (e1, 500),
        (e1, 204),
        (e2, 500),
        (e2, 204),
        (e3, 500),
        (e3, 204),
    ]
    assert all(r.verified for r in receiver.received)
    assert {d["status"] for d in await deliveries(api, endpoint["id"])} == {"delivered"}


async def test_a_given_up_delivery_no_longer_holds_and_a_resend_delivers_it(
    api: Api, app: Litestar, clock: FrozenClock
) -> None:
    receiver = Receiver(fail_first=3)  # = max attempts: every event gives up
    with ReceiverServer(receiver) as server:
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["member.*"]}
        )
        receiver.secret = endpoint["secret"]
        customer = (await api.post("/v1/customers", {"name": "Flaky"}))["id"]
        await api.post(f"/v1/customers/{customer}/members", {"email": "a@flaky.example"})
        [first] = await member_events(api)
        for step in (0, 30, 60):
            clock.advance(timedelta(seconds=step))
            await settle(api, app)
        [failed] = await deliveries(api, endpoint["id"])
        assert (failed["status"], failed["attempts"]) == ("failed", 3)

        # A later event is not held by the one that gave up.
        await api.post(f"/v1/customers/{customer}/members", {"email": "b@flaky.example"})
        await settle(api, app)
        second = (await member_events(api))[1]["id"]
        assert receiver.received[-1].webhook_id == second

        # Resend: due now, a fresh attempt budget; the receiver now answers 204 (fourth try of it).
        resent = await api.post(f"/v1/webhook_deliveries/{failed['id']}/resend", {}, expect=200)
        assert (resent["status"], resent["attempts"], resent["next_attempt_at"]) == (
            "pending",
            0,
            "2026-01-01T00:01:30Z",
        )
        await settle(api, app)
    [again] = [d for d in await deliveries(api, endpoint["id"]) if d["id"] == failed["id"]]
    assert (again["status"], again["attempts"], again["last_status_code"]) == ("delivered", 1, 204)
    assert [r.webhook_id for r in receiver.received].count(first["id"]) == 4
    audit = (await api.get("/v1/events", params={"type": "webhook_delivery.resent"}))["data"]
    assert [(e["aggregate_id"], e["data"]["event"]) for e in audit] == [(failed["id"], first["id"])]
    await api.post("/v1/webhook_deliveries/whd_missing/resend", {}, expect=404)


async def test_replay_a_range_delivers_again_in_event_order(
    api: Api, app: Litestar, clock: FrozenClock
) -> None:
    receiver = Receiver()
    with ReceiverServer(receiver) as server:
        await three_members(api)
        await settle(api, app)  # relayed before the endpoint exists
        e1, e2, e3 = await member_events(api)
        # The endpoint is made after the events: nothing was sent to it; a replay sends them.
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["member.*"]}
        )
        receiver.secret = endpoint["secret"]
        await settle(api, app)
        assert receiver.received == []

        replay = await api.post(f"/v1/webhook_endpoints/{endpoint['id']}/replay", {}, expect=200)
        assert (replay["object"], replay["created"], replay["requeued"], replay["next_from_seq"]) == (
            "webhook_replay",
            3,
            0,
            None,
        )
        assert [d["event"] for d in replay["deliveries"]] == [e1["id"], e2["id"], e3["id"]]
        await settle(api, app)
        assert [r.webhook_id for r in receiver.received] == [e1["id"], e2["id"], e3["id"]]

        # Again from the second event's seq on, only member.added: two requeued, sent in order.
        body = {"from_seq": e2["seq"], "event_types": ["member.added"]}
        again = await api.post(f"/v1/webhook_endpoints/{endpoint['id']}/replay", body, expect=200)
        assert (again["created"], again["requeued"]) == (0, 2)
        # By time: nothing occurred before the first event.
        empty = await api.post(
            f"/v1/webhook_endpoints/{endpoint['id']}/replay", {"to_time": "2025-12-31T00:00:00Z"}, expect=200
        )
        assert (empty["created"], empty["requeued"], empty["deliveries"]) == (0, 0, [])
        await settle(api, app)
    assert [r.webhook_id for r in receiver.received] == [e1["id"], e2["id"], e3["id"], e2["id"], e3["id"]]
    assert all(r.verified for r in receiver.received)
    log = {d["event"]: d for d in await deliveries(api, endpoint["id"])}
    assert [log[e["id"]]["status"] for e in (e1, e2, e3)] == ["delivered"] * 3
    audit = (await api.get("/v1/events", params={"type": "webhook_endpoint.replayed"}))["data"]
    assert [(e["data"]["created"], e["data"]["requeued"]) for e in audit] == [(3, 0), (0, 2), (0, 0)]


async def test_replay_validation_and_tenancy(api: Api, app: Litestar) -> None:
    mine = await three_members(api, "Mine")
    await three_members(api, "Theirs")
    key = await api.post("/v1/api_keys", {"name": "hooks", "scopes": ["webhooks:write"], "customer": mine})
    tenant = api.as_key(key["secret"])
    scoped = await tenant.post(
        "/v1/webhook_endpoints", {"url": "https://mine.example/hooks", "enabled_events": ["member.*"]}
    )
    platform = await api.post(
        "/v1/webhook_endpoints", {"url": "https://platform.example/hooks", "enabled_events": ["member.*"]}
    )
    # The tenant's endpoint replays the tenant's events only; the platform's replays everyone's.
    replay = await tenant.post(f"/v1/webhook_endpoints/{scoped['id']}/replay", {}, expect=200)
    assert replay["created"] == 3
    everyone = await api.post(f"/v1/webhook_endpoints/{platform['id']}/replay", {}, expect=200)
    assert everyone["created"] == 6
    # Not the tenant's: the platform endpoint, and a platform delivery of even its own event.
    await tenant.post(f"/v1/webhook_endpoints/{platform['id']}/replay", {}, expect=404)
    own_event_platform_delivery = everyone["deliveries"][0]["id"]
    problem = await tenant.post(
        f"/v1/webhook_deliveries/{own_event_platform_delivery}/resend", {}, expect=404
    )
    assert problem["code"] == "webhook_delivery_not_found"
    await tenant.post(f"/v1/webhook_deliveries/{replay['deliveries'][0]['id']}/resend", {}, expect=200)

    url = f"/v1/webhook_endpoints/{platform['id']}/replay"
    bad = await api.post(url, {"from_seq": 5, "to_seq": 4}, expect=422)
    assert bad["field"] == "to_seq"
    bad = await api.post(
        url, {"from_time": "2026-01-02T00:00:00Z", "to_time": "2026-01-01T00:00:00Z"}, expect=422
    )
    assert bad["field"] == "to_time"
    assert (await api.post(url, {"event_types": ["nope"]}, expect=422))["field"] == "enabled_events"
    await api.post(url, {"from_seq": 0}, expect=422)
    await api.post(url, {"extra": 1}, expect=422)
