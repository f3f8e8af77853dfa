"""The customer portal through HTTP: configuration (platform keys), one-time portal links, and the cancel
flow with its reason as the pages do it (the same subscription service the API calls).

Exact values throughout; the clock is frozen so link and session lifetimes are tested to the second.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from litestar import Litestar

from gateway.kernel.clock import FrozenClock
from tests.conftest import Api

RETURN = "https://app.example/account"
ALL_ACTIONS = [
    "upgrade",
    "downgrade",
    "switch_interval",
    "change_seats",
    "addons",
    "promotion_code",
    "pause",
    "cancel",
    "update_billing_details",
]


async def customer_with_plan(api: Api, name: str = "Acme") -> tuple[dict[str, Any], dict[str, Any]]:
    customer = await api.post("/v1/customers", {"name": name, "currency": "USD"})
    sub = await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "pro_monthly", "trial_days": 0}
    )
    return customer, sub


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def csrf_of(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


async def test_configuration_defaults_platform_default_and_a_customers_own(api: Api, demo: Any) -> None:
    customer, _ = await customer_with_plan(api)
    default = await api.get("/v1/portal_configuration")
    assert default == {
        "object": "portal_configuration",
        "customer": None,
        "source": "platform",
        "actions": ALL_ACTIONS,
        "plans": [],
        "retention_coupon": None,
        "default_return_url": None,
    }
    await api.post(
        "/v1/coupons", {"id": "STAY20", "percent_off": 20, "duration": "repeating", "duration_in_months": 3}
    )
    platform = await api.call(
        "PUT",
        "/v1/portal_configuration",
        json={"actions": ["cancel", "upgrade"], "plans": ["pro"], "retention_coupon": "STAY20"},
    )
    # Actions come back in the portal's own order, plans by key.
    assert (platform["actions"], platform["plans"], platform["retention_coupon"]) == (
        ["upgrade", "cancel"],
        ["pro"],
        "STAY20",
    )
    # A customer without its own configuration gets the platform's.
    inherited = await api.get("/v1/portal_configuration", params={"customer": customer["id"]})
    assert (inherited["customer"], inherited["source"], inherited["actions"]) == (
        customer["id"],
        "platform",
        ["upgrade", "cancel"],
    )
    own = await api.call(
        "PUT",
        "/v1/portal_configuration",
        params={"customer": customer["id"]},
        json={"actions": ["pause"], "default_return_url": RETURN},
    )
    assert (own["source"], own["actions"], own["retention_coupon"], own["default_return_url"]) == (
        customer["id"],
        ["pause"],
        None,
        RETURN,
    )
    # Bad input changes nothing: an unknown action, plan or coupon, a customer that does not exist.
    bad_action = await api.call("PUT", "/v1/portal_configuration", json={"actions": ["refund"]}, expect=422)
    assert bad_action["field"] == "actions[0]" or bad_action["field"].startswith("actions")
    bad_plan = await api.call(
        "PUT", "/v1/portal_configuration", json={"actions": [], "plans": ["gold"]}, expect=422
    )
    assert bad_plan["field"] == "plans"
    bad_coupon = await api.call(
        "PUT", "/v1/portal_configuration", json={"actions": [], "retention_coupon": "NOPE"}, expect=422
    )
    assert bad_coupon["field"] == "retention_coupon"
    await api.call(
        "PUT", "/v1/portal_configuration", params={"customer": "cus_nope"}, json={"actions": []}, expect=404
    )
    assert (await api.get("/v1/portal_configuration"))["actions"] == ["upgrade", "cancel"]


async def test_a_portal_link_opens_once_within_five_minutes(
    api: Api, app: Litestar, demo: Any, clock: FrozenClock
) -> None:
    customer, _ = await customer_with_plan(api)
    made = await api.post(
        "/v1/portal_sessions", {"customer": customer["id"], "return_url": RETURN, "locale": "nl"}
    )
    assert made["object"] == "portal_session" and made["customer"] == customer["id"]
    assert re.fullmatch(r"http://.+/portal/session/tgportal_[A-Za-z0-9_-]{43}", made["url"]), made["url"]
    assert (made["return_url"], made["locale"]) == (RETURN, "nl")
    created = made["created_at"]
    assert made["expires_at"] > created
    client = api.client
    token = token_of(made["url"])

    opened = await client.get(f"/portal/session/{token}", follow_redirects=False)
    assert (opened.status_code, opened.headers["location"]) == (303, "/portal")
    cookie = opened.cookies.get("tg_portal")
    assert cookie and cookie.startswith("tgps_")
    set_cookie = opened.headers.get_list("set-cookie")
    assert any(c.startswith("tg_portal=") and "HttpOnly" in c for c in set_cookie)

    # Used twice: a clear page, no second session.
    again = await client.get(f"/portal/session/{token}", follow_redirects=False)
    assert again.status_code == 401
    assert 'data-code="portal_link_invalid"' in again.text

    # A fresh link left unopened for 5 minutes and a second is expired.
    late = await api.post("/v1/portal_sessions", {"customer": customer["id"]})
    clock.advance(timedelta(minutes=5, seconds=1))
    expired = await client.get(f"/portal/session/{token_of(late['url'])}", follow_redirects=False)
    assert expired.status_code == 401 and 'data-code="portal_link_invalid"' in expired.text

    # A customer that does not exist gets no link; a long or non-http return URL is refused.
    await api.post("/v1/portal_sessions", {"customer": "cus_nope"}, expect=404)
    await api.post(
        "/v1/portal_sessions", {"customer": customer["id"], "return_url": "javascript:alert(1)"}, expect=422
    )


async def test_cancel_with_a_reason_and_undo_through_the_pages(
    api: Api, app: Litestar, demo: Any, clock: FrozenClock
) -> None:
    customer, sub = await customer_with_plan(api)
    made = await api.post("/v1/portal_sessions", {"customer": customer["id"], "return_url": RETURN})
    client = api.client
    client.headers.pop("Authorization", None)
    await client.get(f"/portal/session/{token_of(made['url'])}", follow_redirects=False)

    overview = await client.get("/portal", headers={"Accept-Language": "en"})
    assert overview.status_code == 200, overview.text
    assert overview.headers["cache-control"] == "no-store"
    html = overview.text
    assert '<dd id="plan-name">Pro</dd>' in html
    assert "$29.00" in html
    assert f'href="{RETURN}"' in html

    form = await client.get("/portal/cancel")
    assert form.status_code == 200
    csrf = csrf_of(form.text)

    # Without the CSRF token: refused, nothing canceled.
    forged = await client.post("/portal/cancel", data={"feedback": "too_expensive"})
    assert forged.status_code == 403
    # No reason chosen: the form again with the error beside the question; nothing canceled.
    missing = await client.post("/portal/cancel", data={"_csrf_token": csrf, "comment": "meh"})
    assert missing.status_code == 422
    assert 'id="e-feedback"' in missing.text and "Choose a reason." in missing.text
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["cancel_at_period_end"] is False

    done = await client.post(
        "/portal/cancel",
        data={"_csrf_token": csrf, "feedback": "missing_features", "comment": "no SSO"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/portal?done=canceled")
    canceled = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (canceled["cancel_at_period_end"], canceled["cancellation_details"]) == (
        True,
        {"reason": None, "feedback": "missing_features", "comment": "no SSO"},
    )
    page = (await client.get("/portal?done=canceled")).text
    assert 'id="undo-cancel"' in page and 'id="cancel-at"' in page

    kept = await client.post("/portal/undo_cancel", data={"_csrf_token": csrf}, follow_redirects=False)
    assert (kept.status_code, kept.headers["location"]) == (303, "/portal?done=kept")
    after = await api.get(f"/v1/subscriptions/{sub['id']}")
    assert (after["cancel_at_period_end"], after["cancellation_details"]) == (False, None)

    # An hour later the session is over: the portal asks for a new link.
    clock.advance(timedelta(hours=1, seconds=1))
    stale = await client.get("/portal")
    assert stale.status_code == 401 and 'data-code="portal_session_invalid"' in stale.text
    # The way back in, which is also where a customer e-mail's button (/portal#...) lands without a
    # session: a new link from the app, or the organisation's SSO for members who manage billing.
    assert "open Billing from the app again" in stale.text and 'href="/portal/sso"' in stale.text


async def test_a_portal_that_does_not_offer_cancel_refuses_it(api: Api, app: Litestar, demo: Any) -> None:
    customer, sub = await customer_with_plan(api)
    await api.call(
        "PUT", "/v1/portal_configuration", params={"customer": customer["id"]}, json={"actions": ["pause"]}
    )
    made = await api.post("/v1/portal_sessions", {"customer": customer["id"]})
    client = api.client
    await client.get(f"/portal/session/{token_of(made['url'])}", follow_redirects=False)
    overview = await client.get("/portal")
    assert 'id="cancel-link"' not in overview.text
    refused = await client.get("/portal/cancel")
    assert refused.status_code == 403 and 'data-code="portal_action_not_offered"' in refused.text
    assert (await api.get(f"/v1/subscriptions/{sub['id']}"))["cancel_at_period_end"] is False
