"""Issue 9 #2: SSRF through webhook endpoints. Internal targets are refused when the endpoint is saved (422
`url_not_allowed` with a reason) and again on every send (the name is resolved, vetted and connected to by
address, so a DNS answer that changes in between is refused); redirects are not followed; `last_error` is a
failure class, never the internal message."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.app import create_app
from gateway.db.session import Database
from gateway.identity.http import forget_cached_keys
from gateway.kernel.clock import FrozenClock
from gateway.security import outbound
from tests.conftest import ADMIN_KEY, Api
from tests.provisioning.helpers import manual_settings

PUBLIC = "93.184.215.14"


class Resolver:
    """Stands in for DNS: `answers[host]` is what the name resolves to now (a test may change it)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.answers[host])


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    resolver = Resolver()
    monkeypatch.setattr(outbound, "resolve", resolver)
    return resolver


@asynccontextmanager
async def running(db: Database, clock: FrozenClock, **policy: Any) -> AsyncIterator[tuple[Api, Litestar]]:
    settings = manual_settings(webhook_max_attempts=3, webhook_timeout_seconds=1.0, **policy)
    forget_cached_keys()  # the bootstrap key's id is this database's
    app = create_app(settings, clock=clock, db=db)
    async with AsyncTestClient(app) as client:
        yield Api(client, ADMIN_KEY), app
    forget_cached_keys()


async def delivery_log(api: Api, endpoint: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/v1/webhook_endpoints/{endpoint}/deliveries"))["data"])


async def one_event(api: Api, app: Litestar) -> None:
    """Something every `member.*` endpoint hears about, relayed and attempted once. Only the relay's own
    pass runs here (not `settle`, which also syncs the engine and revocation list that the app's lifespan
    loop is syncing at the same time)."""
    customer = (await api.post("/v1/customers", {"name": "Hooked"}))["id"]
    await api.post(f"/v1/customers/{customer}/members", {"email": "m@hooked.example", "role": "viewer"})
    await app.state.relay.tick()


# -- loopback receivers --------------------------------------------------------------------------------------
class Hits:
    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []


@contextmanager
def server(answer: Any) -> Iterator[tuple[int, Hits]]:
    """A loopback HTTP server; `answer(handler)` writes the response."""
    hits = Hits()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            hits.requests.append({k.lower(): v for k, v in self.headers.items()})
            answer(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(httpd.server_address[1]), hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def status(code: int, **headers: str) -> Any:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(code)
        for name, value in {"content-length": "0", **headers}.items():
            handler.send_header(name, value)
        handler.end_headers()

    return answer


def slow(handler: BaseHTTPRequestHandler) -> None:
    time.sleep(2.5)  # longer than the 1 s attempt timeout
    status(204)(handler)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- at creation ---------------------------------------------------------------------------------------------
REFUSED = [
    ("http://127.0.0.1:18999/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link_local"),
    ("http://127.0.0.1:6379/", "loopback"),
    ("http://10.1.2.3/hook", "private"),
    ("http://172.16.0.1/hook", "private"),
    ("http://192.168.1.10/hook", "private"),
    ("http://100.64.0.1/hook", "not_global"),
    ("http://0.0.0.0:8000/", "unspecified"),
    ("http://224.0.0.251/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::1]:8000/", "loopback"),
    ("http://[fe80::1]/", "link_local"),
    ("http://[fd00::1]/", "private"),
    ("http://[::ffff:127.0.0.1]/", "ipv4_embedded"),
    ("http://[::ffff:169.254.169.254]/", "ipv4_embedded"),
    ("http://[::127.0.0.1]/", "ipv4_embedded"),
    ("http://[::]/", "unspecified"),
    ("http://internal.example.test/", "private"),  # a name that resolves to a private address
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
async def test_internal_targets_are_refused_at_creation(
    db: Database, clock: FrozenClock, dns: Resolver, url: str, reason: str
) -> None:
    dns.answers["internal.example.test"] = ["10.20.30.40"]
    async with running(db, clock, webhook_allow_http=True) as (api, _):
        body = {"url": url, "enabled_events": ["*"]}
        problem = await api.post("/v1/webhook_endpoints", body, expect=422)
        assert (problem["code"], problem["field"], problem["reason"]) == ("url_not_allowed", "url", reason)
        ok = await api.post(
            "/v1/webhook_endpoints", {"url": f"http://{PUBLIC}/hook", "enabled_events": ["*"]}
        )
        changed = await api.patch(f"/v1/webhook_endpoints/{ok['id']}", {"url": url}, expect=422)
        assert (changed["code"], changed["reason"]) == ("url_not_allowed", reason)
        assert [e["url"] for e in (await api.get("/v1/webhook_endpoints"))["data"]] == [
            f"http://{PUBLIC}/hook"
        ]


async def test_odd_spellings_of_loopback_are_resolved_and_refused(db: Database, clock: FrozenClock) -> None:
    """Decimal, short and hex forms mean 127.0.0.1 to the system resolver; so does localhost."""
    async with running(db, clock, webhook_allow_http=True) as (api, _):
        for url in ("http://2130706433/", "http://127.1/", "http://0x7f.0.0.1/", "http://localhost:6379/"):
            problem = await api.post(
                "/v1/webhook_endpoints", {"url": url, "enabled_events": ["*"]}, expect=422
            )
            assert (problem["code"], problem["reason"]) == ("url_not_allowed", "loopback"), url


async def test_https_only_unless_a_setting_allows_http(
    db: Database, clock: FrozenClock, dns: Resolver
) -> None:
    dns.answers["hooks.example.com"] = [PUBLIC]
    async with running(db, clock) as (api, _):
        plain = {"url": "http://hooks.example.com/in", "enabled_events": ["*"]}
        problem = await api.post("/v1/webhook_endpoints", plain, expect=422)
        assert (problem["code"], problem["reason"]) == ("url_not_allowed", "scheme")
        creds = {"url": "https://user:pw@hooks.example.com/in", "enabled_events": ["*"]}
        assert (await api.post("/v1/webhook_endpoints", creds, expect=422))["reason"] == "credentials"
        await api.post(
            "/v1/webhook_endpoints", {"url": "https://hooks.example.com/in", "enabled_events": ["*"]}
        )


# -- at send time --------------------------------------------------------------------------------------------
async def test_a_name_that_resolves_to_a_private_address_at_send_time_is_refused(
    db: Database, clock: FrozenClock, dns: Resolver
) -> None:
    with server(status(204)) as (port, hits):
        dns.answers["rebind.example.com"] = [PUBLIC]
        async with running(db, clock, webhook_allow_http=True) as (api, app):
            url = f"http://rebind.example.com:{port}/hook"
            endpoint = await api.post("/v1/webhook_endpoints", {"url": url, "enabled_events": ["member.*"]})
            dns.answers["rebind.example.com"] = ["127.0.0.1"]  # DNS rebinding: now it points inside
            await one_event(api, app)
            [attempt] = await delivery_log(api, endpoint["id"])
    assert (attempt["attempts"], attempt["last_status_code"], attempt["last_error"]) == (
        1,
        None,
        "target_not_allowed",
    )
    assert hits.requests == []
    assert dns.asked.count("rebind.example.com") == 2  # at creation and at send


async def test_the_request_goes_to_the_vetted_address_with_the_original_host(
    db: Database, clock: FrozenClock, dns: Resolver
) -> None:
    """With private targets allowed (as in development), the sender connects to the address it checked
    and names the host in the Host header: it never asks DNS a second time between check and connect."""
    with server(status(204)) as (port, hits):
        dns.answers["pinned.example.com"] = ["127.0.0.1"]
        async with running(db, clock, webhook_allow_http=True, webhook_allow_private_targets=True) as (
            api,
            app,
        ):
            url = f"http://pinned.example.com:{port}/hook"
            endpoint = await api.post("/v1/webhook_endpoints", {"url": url, "enabled_events": ["member.*"]})
            await one_event(api, app)
            [attempt] = await delivery_log(api, endpoint["id"])
    assert (attempt["status"], attempt["last_status_code"], attempt["last_error"]) == ("delivered", 204, None)
    assert [r["host"] for r in hits.requests] == [f"pinned.example.com:{port}"]
    assert dns.asked.count("pinned.example.com") == 2


async def test_a_redirect_is_not_followed(db: Database, clock: FrozenClock) -> None:
    with server(status(204)) as (inner_port, inner):
        to_inner = status(302, location=f"http://127.0.0.1:{inner_port}/latest/meta-data/")
        with server(to_inner) as (port, redirecting):
            policy = {"webhook_allow_http": True, "webhook_allow_private_targets": True}
            async with running(db, clock, **policy) as (api, app):
                url = f"http://127.0.0.1:{port}/hook"
                endpoint = await api.post(
                    "/v1/webhook_endpoints", {"url": url, "enabled_events": ["member.*"]}
                )
                await one_event(api, app)
                [attempt] = await delivery_log(api, endpoint["id"])
    assert len(redirecting.requests) == 1 and inner.requests == []
    assert (attempt["status"], attempt["last_status_code"], attempt["last_error"]) == (
        "pending",
        302,
        "redirect_not_followed",
    )


# -- last_error is a class -----------------------------------------------------------------------------------
async def test_last_error_is_a_class_of_failure_never_the_internal_message(
    db: Database, clock: FrozenClock, dns: Resolver
) -> None:
    dns.answers["hooks.example.com"] = [PUBLIC]
    with (
        server(status(503)) as (failing, _),
        server(slow) as (slow_port, _),
        server(status(404)) as (missing, _),
    ):
        targets = {
            "connection_refused": f"http://127.0.0.1:{closed_port()}/hook",
            "http_5xx": f"http://127.0.0.1:{failing}/hook",
            "http_4xx": f"http://127.0.0.1:{missing}/hook",
            "timeout": f"http://127.0.0.1:{slow_port}/hook",
            # TLS spoken to a plain-HTTP server: the handshake fails.
            "tls_error": f"https://127.0.0.1:{failing}/hook",
            "dns_error": "http://gone.example.com/hook",
        }
        async with running(db, clock, webhook_allow_http=True, webhook_allow_private_targets=True) as (
            api,
            app,
        ):
            dns.answers["gone.example.com"] = [PUBLIC]
            ids = {}
            for expected, url in targets.items():
                body = {"url": url, "enabled_events": ["member.*"]}
                ids[expected] = (await api.post("/v1/webhook_endpoints", body))["id"]
            del dns.answers["gone.example.com"]  # the name stops resolving before the send
            await one_event(api, app)
            logged = {expected: (await delivery_log(api, endpoint))[0] for expected, endpoint in ids.items()}
    assert {expected: d["last_error"] for expected, d in logged.items()} == {k: k for k in targets}
    assert {expected: d["last_status_code"] for expected, d in logged.items()} == {
        "connection_refused": None,
        "http_5xx": 503,
        "http_4xx": 404,
        "timeout": None,
        "tls_error": None,
        "dns_error": None,
    }
