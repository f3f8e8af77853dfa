"""Real peers for the SSO tests, all on loopback: panva's oidc-provider under node, Tiergate under uvicorn
(SQLite file), and a token-endpoint proxy that forges ID tokens for the attack tests.

Under CI (env CI set) a missing node, npm package or chromium fails the test; elsewhere it skips.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.all_models import Base
from gateway.app import create_app
from gateway.catalog.repository import CatalogRepository
from gateway.catalog.service import CatalogService, GrantInput
from gateway.config import Settings
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.identity.service import ApiKeyService
from gateway.kernel.clock import SystemClock

IN_CI = bool(os.environ.get("CI"))
IDP_DIR = Path(__file__).resolve().parent.parent / "integration" / "idp"
ADMIN_KEY = "tg_sk_sso_admin_0123456789abcdef"
CLIENT_ID = "tiergate-test"
CLIENT_SECRET = "idp-client-secret-for-tests-only"
# Pro, version 2 in these tests: Pro's features and roles plus SSO, with only 2 seats (seat-limit tests).
PRO_SSO_GRANTS = [
    GrantInput("projects", "unlimited"),
    GrantInput("seats", 2),
    GrantInput("storage_mb", 10_240),
    GrantInput("api_calls", 100_000),
    GrantInput("reporting_basic"),
    GrantInput("reporting_advanced"),
    GrantInput("support_email"),
    GrantInput("support_priority"),
    GrantInput("sso"),
]


def need(what: str, present: bool, hint: str) -> None:
    if present:
        return
    if IN_CI:
        pytest.fail(f"CI is set but {what} is missing ({hint})")
    pytest.skip(f"{what} is missing ({hint})")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the IdP --------------------------------------------------------------------------------------------
@dataclass
class IdP:
    issuer: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_idp(redirect_uri: str, post_logout_redirect_uri: str) -> IdP:
    node = shutil.which("node")
    need("node", node is not None, "apt-get install nodejs npm")
    need(
        "the oidc-provider npm package",
        (IDP_DIR / "node_modules" / "oidc-provider").is_dir(),
        f"npm ci --prefix {IDP_DIR}",
    )
    assert node is not None
    port = free_port()
    env = {
        **os.environ,
        "IDP_PORT": str(port),
        "IDP_CLIENT_ID": CLIENT_ID,
        "IDP_CLIENT_SECRET": CLIENT_SECRET,
        "IDP_REDIRECT_URI": redirect_uri,
        "IDP_POST_LOGOUT_REDIRECT_URI": post_logout_redirect_uri,
    }
    process = subprocess.Popen(
        [node, str(IDP_DIR / "idp.mjs")],
        cwd=IDP_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode()
        if line.startswith("ready "):
            # Keep draining stdout so the IdP never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return IdP(line.split()[1], process)
        if process.poll() is not None:
            break
        time.sleep(0.01)
    process.kill()
    raise RuntimeError("the IdP did not start")


# -- Tiergate -------------------------------------------------------------------------------------------
@dataclass
class Tiergate:
    url: str
    server: uvicorn.Server
    thread: threading.Thread
    db_url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_tiergate(
    root: Path, port: int, *, redis_url: str = "", public_url: str | None = None, prepare: bool = True
) -> Tiergate:
    """Serve Tiergate on `port` with the SQLite file under `root`. `prepare` builds and seeds the database
    (the first replica); `public_url` is where browsers and the IdP reach it (a load balancer's address)."""
    db_url = f"sqlite+aiosqlite:///{root / 'tiergate.sqlite3'}"
    base = f"http://127.0.0.1:{port}"

    async def prepare_database() -> None:
        db = Database(db_url)
        # create_all, not migrations: the schema under test includes tables whose migration comes later.
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with db.unit_of_work() as session:
            clock = SystemClock()
            await seed_catalog(session, clock)
            await CatalogService(CatalogRepository(session), clock).publish_grants(
                "pro", PRO_SSO_GRANTS, note="SSO with two seats (tests)"
            )
            await ApiKeyService(session, clock).ensure_bootstrap(ADMIN_KEY)
        await db.dispose()

    if prepare:
        asyncio.run(prepare_database())
    settings = Settings(
        database_url=db_url,
        redis_url=redis_url,
        migrate_on_start=False,
        scheduler_enabled=False,
        token_issuer=public_url or base,
        sso_public_url=public_url or base,
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/health").status_code == 200:
                return Tiergate(base, server, thread, db_url)
        time.sleep(0.05)
    server.should_exit = True
    raise RuntimeError("Tiergate did not start")


class Admin:
    """Tiergate's API as the platform admin."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=15
        )

    def call(self, method: str, path: str, body: Any = None, expect: int = 201) -> Any:
        response = self.client.request(method, path, json=body)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def tenant(self, price: str, *, default_role: str = "viewer", **members: str) -> str:
        customer = self.call(
            "POST", "/v1/customers", {"name": "Org", "currency": "USD", "default_role": default_role}
        )["id"]
        self.call("POST", "/v1/subscriptions", {"customer": customer, "price": price, "trial_days": 0})
        for email, role in members.items():
            self.call("POST", f"/v1/customers/{customer}/members", {"email": email, "role": role})
        self.synced()
        return customer

    def members(self, customer: str) -> list[dict[str, Any]]:
        page = self.call(
            "GET", f"/v1/customers/{customer}/members?include_removed=true&limit=100", expect=200
        )
        return list(page["data"])

    def connection(
        self, customer: str | None, issuer: str, domains: list[str], **extra: Any
    ) -> dict[str, Any]:
        body = {
            "name": "Test IdP",
            "issuer": issuer,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "allowed_domains": domains,
            **({"customer": customer} if customer else {}),
            **extra,
        }
        return dict(self.call("POST", "/v1/sso/connections", body))

    def synced(self) -> None:
        latest, cursor = 0, None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
            page = self.client.get("/v1/events", params=params).json()
            if page["data"]:
                latest = page["data"][-1]["seq"]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        for _ in range(400):
            if self.client.get("/health").json()["index_version"] >= latest:
                return
            time.sleep(0.025)
        raise AssertionError(f"engine did not reach version {latest}")

    def close(self) -> None:
        self.client.close()


# -- the browser-free sign-in -----------------------------------------------------------------------------
_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"', re.IGNORECASE)


def _form_action(html: str, base: str) -> str:
    found = _FORM_ACTION.search(html)
    assert found, f"no form in the IdP page: {html[:500]}"
    return urljoin(base, found.group(1).replace("&amp;", "&"))


@dataclass
class Browser:
    """A cookie-keeping HTTP client that follows redirects by hand, the way a browser would."""

    tiergate: str
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15, follow_redirects=False))
    trail: list[str] = field(default_factory=list)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.client.get(urljoin(self.tiergate, url), **kw)

    def follow(
        self, response: httpx.Response, *, stop: Callable[[str], bool] | None = None
    ) -> httpx.Response:
        while response.is_redirect:
            target = urljoin(str(response.url), response.headers["location"])
            self.trail.append(target)
            if stop is not None and stop(target):
                return response
            response = self.client.get(target)
        return response

    def authorize(self, authorize_url: str, login: str, *, callback_path: str = "/sso/callback") -> str:
        """Sign in at the IdP (login + consent, unless the IdP session already covers them); returns the
        callback URL the IdP redirects to, unfollowed (the console's staff sign-in has its own path)."""

        def at_callback(url: str) -> bool:
            return url.startswith(self.tiergate + callback_path)

        response = self.follow(self.client.get(authorize_url), stop=at_callback)
        if not response.is_redirect:  # the login screen
            assert 'name="login"' in response.text, response.text[:500]
            action = _form_action(response.text, str(response.url))
            form = {"prompt": "login", "login": login, "password": "x"}
            response = self.follow(self.client.post(action, data=form), stop=at_callback)
        if not response.is_redirect:  # the consent screen
            action = _form_action(response.text, str(response.url))
            response = self.follow(self.client.post(action, data={"prompt": "consent"}), stop=at_callback)
        assert response.is_redirect, response.text[:500]
        callback = urljoin(str(response.url), response.headers["location"])
        assert at_callback(callback), callback
        return callback

    def forget_idp_session(self) -> None:
        """Drop the IdP's cookies (the next login is another person's), keeping Tiergate's session. Both
        servers are on 127.0.0.1 and cookies do not tell ports apart, so they are told apart by name."""
        keep = [c for c in self.client.cookies.jar if c.name == "tg_session"]
        self.client.cookies.clear()
        for cookie in keep:
            self.client.cookies.jar.set_cookie(cookie)

    def start(self, **params: str) -> str:
        """GET /sso/login?…; returns the IdP authorization URL Tiergate redirected to."""
        response = self.get("/sso/login", params=params, headers={"Accept": "application/json"})
        assert response.status_code == 302, (response.status_code, response.text)
        return str(response.headers["location"])

    def sign_in(self, login: str, **params: str) -> httpx.Response:
        """The whole flow; returns Tiergate's answer to the callback (a 303 to /sso/me when it worked)."""
        self.forget_idp_session()
        callback = self.authorize(self.start(**params), login)
        return self.client.get(callback, headers={"Accept": "application/json"})

    def close(self) -> None:
        self.client.close()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


# -- forged ID tokens -----------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unverified_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return loaded


class TokenProxy:
    """Stands between Tiergate and the IdP's token endpoint: forwards the code exchange for real, then hands
    back an ID token it re-signed with its own key (published at /jwks) after applying `mode`:

    resign (honest, proves the proxy path works), nonce, iss, aud, expired, alg_none, bad_signature,
    unknown_kid. The connection under test trusts this proxy's JWKS, so only the tampering can fail it."""

    def __init__(self, token_endpoint: str) -> None:
        self.token_endpoint = token_endpoint
        self.mode = "resign"
        self.key = RSAKey.generate_key(2048, parameters={"kid": "proxy-key-1", "alg": "RS256", "use": "sig"})
        self.other = RSAKey.generate_key(2048, parameters={"kid": "proxy-key-1", "alg": "RS256"})
        self.stranger = RSAKey.generate_key(2048, parameters={"kid": "not-published", "alg": "RS256"})
        self.jwks_fetches = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/jwks":
                    proxy.jwks_fetches += 1
                    self._send(200, {"keys": [proxy.key.as_dict(private=False)]})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = httpx.post(
                    proxy.token_endpoint,
                    content=body,
                    headers={
                        "Content-Type": self.headers.get("Content-Type", ""),
                        "Authorization": self.headers.get("Authorization", ""),
                    },
                    timeout=10,
                )
                answer = upstream.json()
                if upstream.status_code == 200 and "id_token" in answer:
                    answer["id_token"] = proxy.forge(answer["id_token"])
                self._send(upstream.status_code, answer)

            def _send(self, status: int, doc: Any) -> None:
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def forge(self, real: str) -> str:
        claims = _unverified_claims(real)
        mode = self.mode
        key = self.key
        if mode == "nonce":
            claims["nonce"] = "a-nonce-from-another-sign-in"
        elif mode == "iss":
            claims["iss"] = "http://127.0.0.1:9/evil-issuer"
        elif mode == "aud":
            claims["aud"] = "another-client"
        elif mode == "expired":
            claims["iat"] = int(time.time()) - 7200
            claims["exp"] = int(time.time()) - 3600
        elif mode == "alg_none":
            header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
            return f"{header}.{_b64(json.dumps(claims).encode())}."
        elif mode == "bad_signature":
            key = self.other  # same kid as the published key, different private key
        elif mode == "unknown_kid":
            key = self.stranger
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
