"""Signing in through a real IdP (panva's oidc-provider), browser-free: an httpx client that keeps cookies
and follows redirects plays the browser. Tiergate runs for real on a loopback port, since the IdP redirects
the browser to it."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.sso.conftest import Stack
from tests.sso.peers import Browser, query


def verify_tiergate_token(stack: Stack, token: str) -> dict[str, Any]:
    keys = KeySet.import_key_set(httpx.get(f"{stack.tiergate.url}/.well-known/jwks.json").json())
    claims = dict(jwt.decode(token, keys, algorithms=["ES256"]).claims)
    assert claims["iss"] == stack.tiergate.url and claims["aud"] == "tiergate"
    return claims


def test_first_sign_in_joins_the_tenant_with_its_default_role(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", default_role="editor")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])

    authorize = browser.start(email=f"alice@{domain}")
    params = query(authorize)
    assert authorize.startswith(sso_stack.idp.issuer + "/auth?")
    assert params["response_type"] == "code" and params["client_id"] == "tiergate-test"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["redirect_uri"] == f"{sso_stack.tiergate.url}/sso/callback"
    assert params["scope"] == "openid email profile" and params["login_hint"] == f"alice@{domain}"
    assert len(params["state"]) >= 43 and len(params["nonce"]) >= 43

    callback = browser.authorize(authorize, f"alice@{domain}")
    assert query(callback)["iss"] == sso_stack.idp.issuer  # RFC 9207 parameter, sent by the IdP
    done = browser.client.get(callback)
    assert done.status_code == 303 and done.headers["location"] == "/sso/me"
    cookie = done.headers["set-cookie"]
    assert "tg_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")

    page = browser.get("/sso/me", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert f"<dd id=user>alice@{domain}</dd>" in page.text
    assert f"<dd id=tenant>{tenant}</dd>" in page.text and "<dd id=role>editor</dd>" in page.text

    members = admin.members(tenant)
    assert [(m["email"], m["role"], m["status"]) for m in members] == [
        (f"alice@{domain}", "editor", "active")
    ]

    info = browser.get("/sso/session").json()
    assert info["customer"] == tenant and info["user"] == members[0]["user"] and info["roles"] == ["editor"]
    assert info["plan"] == "enterprise" and info["email"] == f"alice@{domain}"

    token = browser.client.post(f"{sso_stack.tiergate.url}/sso/refresh").json()
    claims = verify_tiergate_token(sso_stack, token["access_token"])
    assert claims["sub"] == members[0]["user"] and claims["tid"] == tenant
    assert claims["roles"] == ["editor"] and claims["plan"] == "enterprise"
    assert claims["exp"] - claims["iat"] == 900

    # The sign-in is in the audit log, about the user who signed in.
    log = admin.call("GET", f"/v1/audit_log?customer={tenant}&action=user.signed_in", expect=200)
    assert [(e["action"], e["target"]) for e in log["data"]] == [("user.signed_in", members[0]["user"])]


def test_a_second_sign_in_reuses_the_membership_and_a_connection_role_wins(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", default_role="viewer")
    admin.connection(tenant, sso_stack.idp.issuer, [domain], default_role="admin")
    for _ in range(2):
        done = browser.sign_in(f"bob@{domain}", email=f"bob@{domain}")
        assert done.status_code == 303, done.text
    members = admin.members(tenant)
    assert [(m["email"], m["role"]) for m in members] == [(f"bob@{domain}", "admin")]
    assert sso_stack.users_with(f"bob@{domain}") == 1


def test_routing_by_tenant_and_an_existing_member_keeps_their_role(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", **{f"owner@{domain}": "owner"})
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    done = browser.sign_in(f"owner@{domain}", tenant=tenant)
    assert done.status_code == 303, done.text
    info = browser.get("/sso/session").json()
    assert info["customer"] == tenant and info["roles"] == ["owner"]
    assert len(admin.members(tenant)) == 1


def test_full_seats_refuse_a_new_member_and_create_nothing(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    # Pro v2 in these tests grants SSO with 2 seats; both are taken.
    tenant = admin.tenant("pro_monthly", **{f"a@{domain}": "owner", f"b@{domain}": "editor"})
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    done = browser.sign_in(f"carol@{domain}", email=f"carol@{domain}")
    assert done.status_code == 403
    assert done.headers["content-type"].startswith("application/problem+json")
    problem = done.json()
    assert problem["code"] == "seat_limit_reached" and problem["limit"] == 2 and problem["used"] == 2
    assert "all 2 seats" in problem["detail"]
    assert sso_stack.users_with(f"carol@{domain}") == 0
    assert len(admin.members(tenant)) == 2
    assert "tg_session" not in done.headers.get("set-cookie", "")

    # The same refusal as a page for a browser.
    callback = browser.authorize(browser.start(email=f"carol@{domain}"), f"carol@{domain}")
    page = browser.client.get(callback, headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "No seat left for a new member" in page.text and "data-code='seat_limit_reached'" in page.text
    assert sso_stack.users_with(f"carol@{domain}") == 0

    # Members already in still get in: the quota limits growth, not sign-in.
    assert browser.sign_in(f"b@{domain}", email=f"b@{domain}").status_code == 303


def test_sso_leaves_with_the_plan(sso_stack: Stack, browser: Browser, domain: str) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    assert browser.sign_in(f"dora@{domain}", email=f"dora@{domain}").status_code == 303
    assert browser.client.post(f"{sso_stack.tiergate.url}/sso/refresh").status_code == 200

    subscription = admin.call("GET", f"/v1/subscriptions?customer={tenant}", expect=200)["data"][0]["id"]
    admin.call(
        "POST",
        f"/v1/subscriptions/{subscription}/plan_change",
        {"price": "basic_monthly", "timing": "now"},
    )
    admin.synced()
    refused = browser.get("/sso/login", params={"email": f"dora@{domain}"}, headers={"Accept": "text/html"})
    assert refused.status_code == 403 and "Single sign-on is not part of this plan" in refused.text
    # The live session ends at its next refresh.
    gone = browser.client.post(
        f"{sso_stack.tiergate.url}/sso/refresh", headers={"Accept": "application/json"}
    )
    assert gone.status_code == 403 and gone.json()["code"] == "sso_not_in_plan"
    assert browser.get("/sso/session").status_code == 401


def test_no_connection_for_a_domain(sso_stack: Stack, browser: Browser, domain: str) -> None:
    response = browser.get(
        "/sso/login", params={"email": f"x@{domain}"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 404 and response.json()["code"] == "sso_no_connection"
    page = browser.get("/sso/login", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Sign in with SSO" in page.text and "name=email" in page.text


# -- attacks on the authorization response --------------------------------------------------------------
@pytest.fixture
def tenant_with_idp(sso_stack: Stack, domain: str) -> str:
    tenant = sso_stack.admin.tenant("enterprise_monthly")
    sso_stack.admin.connection(tenant, sso_stack.idp.issuer, [domain])
    return tenant


def _with(url: str, **changes: str | None) -> str:
    from urllib.parse import urlencode, urlsplit, urlunsplit

    params = query(url)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=urlencode(params)))


def _refused(stack: Stack, response: httpx.Response, code: str, email: str, tenant: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code
    assert "tg_session" not in response.headers.get("set-cookie", "")
    assert stack.users_with(email) == 0 and stack.admin.members(tenant) == []


def test_wrong_state_is_refused(
    sso_stack: Stack, browser: Browser, domain: str, tenant_with_idp: str
) -> None:
    email = f"eve@{domain}"
    callback = browser.authorize(browser.start(email=email), email)
    for forged in (_with(callback, state="forged-state-value"), _with(callback, state=None)):
        _refused(sso_stack, browser.client.get(forged), "state_mismatch", email, tenant_with_idp)


def test_a_replayed_callback_and_a_replayed_code_are_refused(
    sso_stack: Stack, browser: Browser, domain: str, tenant_with_idp: str
) -> None:
    email = f"frank@{domain}"
    callback = browser.authorize(browser.start(email=email), email)
    assert browser.client.get(callback).status_code == 303
    assert len(sso_stack.admin.members(tenant_with_idp)) == 1
    # The same callback again: its state was used up.
    again = browser.client.get(callback)
    assert again.status_code == 401 and again.json()["code"] == "state_mismatch"
    # The same code under a fresh, valid state: the IdP refuses the code (used once; other PKCE verifier).
    fresh = query(browser.start(email=f"grace@{domain}"))["state"]
    replay = browser.client.get(_with(callback, state=fresh))
    assert replay.status_code == 401 and replay.json()["code"] == "code_exchange_failed"
    assert sso_stack.users_with(f"grace@{domain}") == 0
    assert len(sso_stack.admin.members(tenant_with_idp)) == 1


def test_a_wrong_or_missing_iss_parameter_is_refused(
    sso_stack: Stack, browser: Browser, domain: str, tenant_with_idp: str
) -> None:
    email = f"mallory@{domain}"
    for iss in ("http://127.0.0.1:9/another-idp", None):
        callback = browser.authorize(browser.start(email=email), email)
        _refused(
            sso_stack, browser.client.get(_with(callback, iss=iss)), "wrong_issuer", email, tenant_with_idp
        )


def test_an_idp_error_response_creates_nothing(
    sso_stack: Stack, browser: Browser, domain: str, tenant_with_idp: str
) -> None:
    email = f"ivan@{domain}"
    authorize = browser.start(email=email)
    state = query(authorize)["state"]
    url = f"/sso/callback?error=access_denied&state={state}&iss={sso_stack.idp.issuer}"
    _refused(sso_stack, browser.get(url), "idp_error", email, tenant_with_idp)


def test_an_unverified_email_is_refused(
    sso_stack: Stack, browser: Browser, domain: str, tenant_with_idp: str
) -> None:
    email = f"judy@{domain}"
    done = browser.sign_in(f"unverified.{email}", email=email)
    _refused(sso_stack, done, "email_not_verified", email, tenant_with_idp)


def test_an_idp_may_only_vouch_for_its_own_domains(sso_stack: Stack, browser: Browser, domain: str) -> None:
    tenant = sso_stack.admin.tenant("enterprise_monthly")
    sso_stack.admin.connection(tenant, sso_stack.idp.issuer, [domain])
    other = f"ceo@x{domain}"
    done = browser.sign_in(other, tenant=tenant)
    _refused(sso_stack, done, "domain_not_allowed", other, tenant)


# -- attacks on the ID token (through the forging token proxy) ----------------------------------------
@pytest.fixture
def proxied(sso_stack: Stack, domain: str) -> Any:
    """A tenant whose connection exchanges codes through the proxy and trusts the proxy's JWKS."""
    tenant = sso_stack.admin.tenant("enterprise_monthly")
    sso_stack.admin.connection(
        tenant,
        sso_stack.idp.issuer,
        [domain],
        token_endpoint=f"{sso_stack.proxy.url}/token",
        jwks_uri=f"{sso_stack.proxy.url}/jwks",
    )
    yield tenant
    sso_stack.proxy.mode = "resign"


def test_the_proxy_path_works_when_nothing_is_tampered(
    sso_stack: Stack, browser: Browser, domain: str, proxied: str
) -> None:
    sso_stack.proxy.mode = "resign"
    done = browser.sign_in(f"honest@{domain}", email=f"honest@{domain}")
    assert done.status_code == 303, done.text
    assert [m["email"] for m in sso_stack.admin.members(proxied)] == [f"honest@{domain}"]


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("nonce", "id_token_wrong_nonce"),
        ("iss", "id_token_wrong_issuer"),
        ("aud", "id_token_wrong_audience"),
        ("expired", "id_token_expired"),
        ("alg_none", "id_token_bad_algorithm"),
        ("bad_signature", "id_token_bad_signature"),
        ("unknown_kid", "id_token_bad_signature"),
    ],
)
def test_a_tampered_id_token_is_refused_and_creates_nothing(
    sso_stack: Stack, browser: Browser, domain: str, proxied: str, mode: str, code: str
) -> None:
    sso_stack.proxy.mode = mode
    email = f"target-{mode}@{domain}"
    _refused(sso_stack, browser.sign_in(email, email=email), code, email, proxied)


# -- refresh and sign-out ----------------------------------------------------------------------------
def test_refresh_follows_the_membership(sso_stack: Stack, browser: Browser, domain: str) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", default_role="viewer")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    assert browser.sign_in(f"kim@{domain}", email=f"kim@{domain}").status_code == 303
    member = admin.members(tenant)[0]
    first = browser.client.post(f"{sso_stack.tiergate.url}/sso/refresh").json()
    assert first["roles"] == ["viewer"] and first["customer"] == tenant and first["plan"] == "enterprise"

    admin.call("PATCH", f"/v1/customers/{tenant}/members/{member['id']}", {"role": "admin"}, expect=200)
    admin.synced()
    second = browser.client.post(f"{sso_stack.tiergate.url}/sso/refresh").json()
    assert second["roles"] == ["admin"] and second["access_token"] != first["access_token"]
    assert verify_tiergate_token(sso_stack, second["access_token"])["roles"] == ["admin"]

    admin.call("DELETE", f"/v1/customers/{tenant}/members/{member['id']}", expect=200)
    admin.synced()
    ended = browser.client.post(
        f"{sso_stack.tiergate.url}/sso/refresh", headers={"Accept": "application/json"}
    )
    assert ended.status_code == 401 and ended.json()["code"] == "membership_ended"
    assert browser.get("/sso/session").status_code == 401  # the session itself is gone
    # And a removed member does not walk back in through JIT.
    again = browser.sign_in(f"kim@{domain}", email=f"kim@{domain}")
    assert again.status_code == 403 and again.json()["code"] == "membership_removed"
    assert [m["status"] for m in admin.members(tenant)] == ["removed"]


def test_sign_out_is_local_and_at_the_idp(sso_stack: Stack, browser: Browser, domain: str) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    assert browser.sign_in(f"lee@{domain}", email=f"lee@{domain}").status_code == 303
    id_token_before = browser.get("/sso/session").json()
    assert id_token_before["email"] == f"lee@{domain}"

    out = browser.client.post(f"{sso_stack.tiergate.url}/sso/logout")
    assert out.status_code == 303
    assert 'tg_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    end_session = out.headers["location"]
    assert end_session.startswith(f"{sso_stack.idp.issuer}/session/end?")
    params = query(end_session)
    assert params["client_id"] == "tiergate-test" and params["id_token_hint"].count(".") == 2
    assert params["post_logout_redirect_uri"] == f"{sso_stack.tiergate.url}/sso/logged-out"
    # Locally over at once, whatever the IdP does next.
    assert browser.get("/sso/session").status_code == 401
    assert browser.client.post(f"{sso_stack.tiergate.url}/sso/refresh").status_code == 401

    # At the IdP: its confirmation form, then back to Tiergate's signed-out page.
    confirm = browser.client.get(end_session)
    assert confirm.status_code == 200 and "op.logoutForm" in confirm.text
    action = re.search(r'action="([^"]+)"', confirm.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', confirm.text)
    assert action and xsrf
    back = browser.client.post(
        urljoin(end_session, action.group(1)), data={"xsrf": xsrf.group(1), "logout": "yes"}
    )
    landed = browser.follow(back)
    assert str(landed.url).startswith(f"{sso_stack.tiergate.url}/sso/logged-out")
    assert landed.status_code == 200 and "You are signed out." in landed.text
    # The IdP session is gone too: the next sign-in asks for the login again.
    response = browser.follow(browser.client.get(browser.start(email=f"lee@{domain}")))
    assert 'name="login"' in response.text


def test_without_an_end_session_endpoint_sign_out_stays_local(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly")
    # Every endpoint explicit, none for logout: no discovery, no RP-initiated logout.
    idp = sso_stack.idp.issuer
    admin.connection(
        tenant,
        idp,
        [domain],
        authorization_endpoint=f"{idp}/auth",
        token_endpoint=f"{idp}/token",
        jwks_uri=f"{idp}/jwks",
    )
    done = browser.sign_in(f"max@{domain}", tenant=tenant)
    assert done.status_code == 303, done.text
    out = browser.client.post(f"{sso_stack.tiergate.url}/sso/logout")
    assert out.status_code == 303 and out.headers["location"] == "/sso/logged-out"
    assert browser.get("/sso/session").status_code == 401
    # Signing out twice (no session) is harmless.
    assert (
        browser.client.post(f"{sso_stack.tiergate.url}/sso/logout").headers["location"] == "/sso/logged-out"
    )


# -- the platform's own IdP ------------------------------------------------------------------------------
def test_a_platform_connection_signs_members_in_but_provisions_no_one(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    # Basic has no SSO feature: the vendor's own IdP is not the tenant's SSO, so it still works.
    tenant = admin.tenant("basic_monthly", **{f"nia@{domain}": "owner"})
    admin.connection(None, sso_stack.idp.issuer, [domain])

    done = browser.sign_in(f"nia@{domain}", email=f"nia@{domain}")  # routed by domain, tenant by membership
    assert done.status_code == 303, done.text
    info = browser.get("/sso/session").json()
    assert info["customer"] == tenant and info["roles"] == ["owner"] and info["plan"] == "basic"

    stranger = f"omar@{domain}"
    refused = browser.sign_in(stranger, tenant=tenant)
    assert refused.status_code == 403 and refused.json()["code"] == "not_a_member"
    assert sso_stack.users_with(stranger) == 0 and len(admin.members(tenant)) == 1


def test_a_tenant_with_its_own_idp_cannot_be_entered_through_the_platform_idp(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", **{f"pia@{domain}": "owner"})
    admin.connection(tenant, sso_stack.idp.issuer, [f"own{domain}"])
    admin.connection(None, sso_stack.idp.issuer, [domain])
    refused = browser.sign_in(f"pia@{domain}", email=f"pia@{domain}")
    assert refused.status_code == 403 and refused.json()["code"] == "sso_connection_required"


def test_concurrent_first_sign_ins_never_exceed_the_seats(sso_stack: Stack, domain: str) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("pro_monthly", **{f"first@{domain}": "owner"})  # 1 of 2 seats taken
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    browsers = [Browser(sso_stack.tiergate.url) for _ in range(4)]
    try:
        callbacks = [
            b.authorize(b.start(email=f"c{i}@{domain}"), f"c{i}@{domain}") for i, b in enumerate(browsers)
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            answers = list(
                pool.map(lambda pair: pair[0].client.get(pair[1]), zip(browsers, callbacks, strict=True))
            )
    finally:
        for b in browsers:
            b.close()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [303, 403, 403, 403], [a.text for a in answers]
    assert {a.json()["code"] for a in answers if a.status_code == 403} == {"seat_limit_reached"}
    assert len([m for m in admin.members(tenant) if m["status"] == "active"]) == 2


def test_a_callback_opened_in_another_browser_is_refused(
    sso_stack: Stack, browser: Browser, domain: str, tenant_with_idp: str
) -> None:
    # Login CSRF: the attacker signs in with their own account and makes the victim's browser finish it.
    attacker = Browser(sso_stack.tiergate.url)
    try:
        email = f"attacker@{domain}"
        callback = attacker.authorize(attacker.start(email=email), email)
    finally:
        attacker.close()
    victim = browser.client.get(callback, headers={"Accept": "application/json"})
    _refused(sso_stack, victim, "browser_mismatch", email, tenant_with_idp)
    assert browser.get("/sso/session").status_code == 401


def test_disabling_a_connection_ends_its_sessions_at_refresh(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly")
    connection = admin.connection(tenant, sso_stack.idp.issuer, [domain])
    assert browser.sign_in(f"quinn@{domain}", email=f"quinn@{domain}").status_code == 303
    admin.call("PATCH", f"/v1/sso/connections/{connection['id']}", {"enabled": False}, expect=200)
    ended = browser.client.post(
        f"{sso_stack.tiergate.url}/sso/refresh", headers={"Accept": "application/json"}
    )
    assert ended.status_code == 401 and ended.json()["code"] == "connection_disabled"
    assert browser.get("/sso/session").status_code == 401
    refused = browser.get(
        "/sso/login", params={"email": f"quinn@{domain}"}, headers={"Accept": "application/json"}
    )
    assert refused.status_code == 404 and refused.json()["code"] == "sso_no_connection"


def test_signing_in_again_replaces_the_previous_session(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    assert browser.sign_in(f"rob@{domain}", email=f"rob@{domain}").status_code == 303
    first = browser.client.cookies["tg_session"]
    assert browser.sign_in(f"rob@{domain}", email=f"rob@{domain}").status_code == 303
    second = browser.client.cookies["tg_session"]
    assert first != second
    stale = httpx.get(f"{sso_stack.tiergate.url}/sso/session", cookies={"tg_session": first})
    assert stale.status_code == 401
    fresh = httpx.get(f"{sso_stack.tiergate.url}/sso/session", cookies={"tg_session": second})
    assert fresh.status_code == 200 and fresh.json()["email"] == f"rob@{domain}"
