"""Webhooks in the console (issue #14): a staff member sees every endpoint and its deliveries, resends
one and replays a range of events, and the test receiver (a real HTTP server on loopback, verifying the
signatures) gets them again; bad input shows beside the field and queues nothing; a read-only member
cannot resend. axe in English and Dutch."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import Api
from tests.notifications.receiver import Receiver, ReceiverServer
from tests.provisioning.helpers import manual_settings
from tests.web.conftest import axe_check, screenshot
from tests.web.test_admin_dashboard import settle, sign_in


@pytest.fixture
def settings() -> Settings:
    # The receiver listens on http://127.0.0.1: the outbound guard refuses that unless allowed.
    return manual_settings(webhook_allow_http=True, webhook_allow_private_targets=True)


async def deliveries(api: Api, endpoint: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/v1/webhook_endpoints/{endpoint}/deliveries"))["data"])


async def test_resend_and_replay_from_the_console_reach_the_receiver_again(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api = web_server
    receiver = Receiver()
    with ReceiverServer(receiver) as server:
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": server.url, "enabled_events": ["customer.provisioned"]}
        )
        receiver.secret = endpoint["secret"]
        customer = (await api.post("/v1/customers", {"name": "Hooked", "currency": "USD"}))["id"]
        await api.post("/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
        await settle(api)
        assert [r.status for r in receiver.received] == [204]
        first_id = receiver.received[0].webhook_id

        await sign_in(page, api.url, db, clock, "sue@vendor.example", "support")  # type: ignore[attr-defined]
        await page.get_by_role("link", name="Webhooks").first.click()
        await page.get_by_role("link", name=server.url).click()
        await page.wait_for_url(f"**/admin/webhooks/{endpoint['id']}")
        [row] = await deliveries(api, endpoint["id"])
        listed = page.locator(f'#deliveries tr[data-delivery="{row["id"]}"]')
        assert await listed.get_attribute("data-status") == "delivered"

        await listed.get_by_role("button", name=f"Resend customer.provisioned {row['id']}").click()
        await page.wait_for_url(f"**/admin/webhooks/{endpoint['id']}?notice=*")
        assert await page.locator("#notice").inner_text() == f"resent {row['id']}"
        await settle(api)
        assert [r.webhook_id for r in receiver.received] == [first_id, first_id]  # the same delivery again

        # A bad start: the error beside the field, nothing queued.
        await page.get_by_label("From").fill("yesterday")
        await page.get_by_role("button", name="Replay").click()
        assert (
            await page.locator("#e-from_time").inner_text() == "from_time is not a valid ISO 8601 timestamp"
        )
        await settle(api)
        assert len(receiver.received) == 2

        await page.get_by_label("From").fill("")
        await page.get_by_label("Event types").fill("customer.provisioned")
        await page.get_by_role("button", name="Replay").click()
        await page.wait_for_url(f"**/admin/webhooks/{endpoint['id']}?notice=*")
        assert await page.locator("#notice").inner_text() == "replayed 1 events"
        await settle(api)
        assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)

        for language in ("en", "nl"):
            for path in ("/admin/webhooks", f"/admin/webhooks/{endpoint['id']}"):
                await page.goto(f"{api.url}{path}?lang={language}")  # type: ignore[attr-defined]
                await axe_check(page)
            await screenshot(page, f"admin-webhook-endpoint-{language}")


async def test_a_read_only_member_sees_the_deliveries_but_cannot_resend(
    web_server: Api, page: Any, db: Database, clock: FrozenClock
) -> None:
    api = web_server
    endpoint = await api.post(
        "/v1/webhook_endpoints", {"url": "https://hooks.example/in", "enabled_events": ["invoice.paid"]}
    )
    await sign_in(page, api.url, db, clock, "rita@vendor.example", "read_only")  # type: ignore[attr-defined]
    shown = await page.goto(f"{api.url}/admin/webhooks/{endpoint['id']}")  # type: ignore[attr-defined]
    assert shown.status == 200
    await page.get_by_role("button", name="Replay").click()
    assert await page.locator("#problem").get_attribute("data-code") == "staff_role_forbidden"
    assert await deliveries(api, endpoint["id"]) == []
