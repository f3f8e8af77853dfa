"""Signing in through a real IdP (panva's oidc-provider), browser-free: an httpx client that keeps cookies
and follows redirects plays the browser. Tiergate runs for real on a loopback port, since the IdP redirects
the browser to it."""

from __future__ import annotations

from typing import Any

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


def test_first_sign_in_joins_the_tenant_with_its_default_role(sso_stack: Stack, browser: Browser, domain: str) -> None:
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
    assert [(m["email"], m["role"], m["status"]) for m in members] == [(f"alice@{domain}", "editor", "active")]

    info = browser.get("/sso/session").json()
    assert info["customer"] == tenant and info["user"] == members[0]["user"] and info["roles"] == ["editor"]
    assert info["plan"] == "enterprise" and info["email"] == f"alice@{domain}"

    token = browser.client.post(f"{sso_stack.tiergate.url}/sso/refresh").json()
    claims = verify_tiergate_token(sso_stack, token["access_token"])
    assert claims["sub"] == members[0]["user"] and claims["tid"] == tenant
    assert claims["roles"] == ["editor"] and claims["plan"] == "enterprise"
    assert claims["exp"] - claims["iat"] == 900
