"""Forward auth behind a real nginx: `auth_request` to Tiergate's /v1/authz/forward, in front of a sample app.

Three real processes/servers on loopback: Tiergate under uvicorn (SQLite file, migrations, demo catalog),
a stdlib sample app that echoes the identity headers nginx hands it, and nginx with the configuration the
proxy contract prescribes (/work/shared/reference/proxy-contracts.md). `benchmarks/bench_forward_auth.py`
reuses `Stack` to measure what `auth_request` adds.

nginx comes from the Debian package (`.ci/run` installs it). Under CI a missing nginx fails the test;
elsewhere it skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.entitlements.forward import FORWARD_ROUTER
from gateway.entitlements.routes import DEFAULT_TABLE, BadPath, RouteTableError, load_routes
from gateway.kernel.clock import SystemClock

KEY = "tg_sk_forward_auth_0123456789abcdef"
IN_CI = bool(os.environ.get("CI"))


def nginx_binary() -> str | None:
    # Debian installs it in /usr/sbin, which is not on a non-root PATH.
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port}")


# -- the sample app ------------------------------------------------------------------------------------
class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with what it was asked and the identity nginx attached."""

    protocol_version = "HTTP/1.1"  # keep-alive from nginx's upstream pool
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms Nagle/delayed-ACK stall

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "user": self.headers.get("X-User"),
                "tenant": self.headers.get("X-Tenant"),
                "roles": self.headers.get("X-Roles"),
                "plan": self.headers.get("X-Plan"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- nginx ---------------------------------------------------------------------------------------------
NGINX_CONF = """
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;

    # Keep-alive pools: a new TCP connection per check would cost more than the check.
    upstream tiergate {{ server 127.0.0.1:{tiergate}; keepalive 16; }}
    upstream sample_app {{ server 127.0.0.1:{app}; keepalive 16; }}

    server {{
        listen 127.0.0.1:{guarded};

        location = /_auth {{
            internal;
            proxy_pass http://tiergate/v1/authz/forward;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The subrequest is a GET without body whatever the client sent: pass the original along.
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
        }}

        # auth_request turns every status but 2xx/401/403 into 500; bring a quota denial back as 429.
        location @authz_error {{
            default_type application/problem+json;
            if ($authz_status = 429) {{
                add_header Retry-After $authz_retry_after always;
                add_header X-Auth-Reason $authz_reason always;
                return 429 '{{"status":429,"code":"$authz_reason","title":"Quota exceeded"}}';
            }}
            return 500;
        }}

        location / {{
            auth_request /_auth;
            auth_request_set $authz_status $upstream_status;
            auth_request_set $authz_retry_after $upstream_http_retry_after;
            auth_request_set $authz_reason $upstream_http_x_auth_reason;
            auth_request_set $auth_user $upstream_http_x_auth_user;
            auth_request_set $auth_tenant $upstream_http_x_auth_tenant;
            auth_request_set $auth_roles $upstream_http_x_auth_roles;
            auth_request_set $auth_plan $upstream_http_x_auth_plan;
            error_page 500 = @authz_error;
            # A refusal says why (feature_not_in_plan, bad_path, ...); nginx drops the authorizer's body.
            add_header X-Auth-Reason $authz_reason always;

            proxy_pass http://sample_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Set, never appended: a client-sent X-User is overwritten with what Tiergate vouched for.
            proxy_set_header X-User $auth_user;
            proxy_set_header X-Tenant $auth_tenant;
            proxy_set_header X-Roles $auth_roles;
            proxy_set_header X-Plan $auth_plan;
        }}
    }}

    # The baseline for the benchmark: the same proxying, without auth_request.
    server {{
        listen 127.0.0.1:{plain};
        location / {{
            proxy_pass http://sample_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@dataclass
class Stack:
    """Tiergate + sample app + nginx on loopback ports, torn down in reverse order."""

    root: Path
    nginx: str
    tiergate: str = ""
    guarded: str = ""
    plain: str = ""
    _stops: list[Any] = field(default_factory=list)

    def start(self) -> Stack:
        try:
            self.tiergate = self._start_tiergate()
            app_port = self._start_sample_app()
            self._start_nginx(app_port)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_tiergate(self) -> str:
        url = f"sqlite+aiosqlite:///{self.root / 'tiergate.sqlite3'}"

        async def prepare() -> None:
            from gateway.db.migrate import upgrade_head

            db = Database(url)
            await upgrade_head(db)
            async with db.unit_of_work() as session:
                await seed_demo(session, SystemClock(), api_key=KEY)
            await db.dispose()

        asyncio.run(prepare())
        app = create_app(Settings(database_url=url, migrate_on_start=False, scheduler_enabled=False))
        # Until gateway/app.py mounts FORWARD_ROUTER itself; afterwards this is a no-op.
        if not any(r.path.startswith("/v1/authz/forward") for r in app.routes):
            app.register(FORWARD_ROUTER)
        port = free_port()
        # Keep-alive longer than nginx's upstream idle time (60 s), so nginx never reuses a connection the
        # server has just closed (a 502 race).
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_keep_alive=75,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()

        def stop() -> None:
            server.should_exit = True
            thread.join(timeout=10)

        self._stops.append(stop)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health").status_code == 200:
                    return base
            time.sleep(0.05)
        raise RuntimeError("Tiergate did not start")

    def _start_sample_app(self) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        def stop() -> None:
            server.shutdown()
            server.server_close()

        self._stops.append(stop)
        return int(server.server_address[1])

    def _start_nginx(self, app_port: int) -> None:
        root = self.root / "nginx"
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        guarded, plain = free_port(), free_port()
        conf = root / "nginx.conf"
        # Run as root (CI containers), nginx would switch its worker to `nobody`, which cannot enter the
        # test's private temporary directory.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            NGINX_CONF.format(
                root=root,
                user=user,
                tiergate=self.tiergate.rsplit(":", 1)[1],
                app=app_port,
                guarded=guarded,
                plain=plain,
            )
        )
        command = [self.nginx, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf)]
        check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected its configuration:\n{check.stderr}")
        proc = subprocess.Popen(
            [*command, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

        def stop() -> None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

        self._stops.append(stop)
        _wait_for_port(guarded, "nginx", proc)
        _wait_for_port(plain, "nginx", proc)
        self.guarded, self.plain = f"http://127.0.0.1:{guarded}", f"http://127.0.0.1:{plain}"

    def error_log(self) -> str:
        path = self.root / "nginx" / "error.log"
        return path.read_text() if path.exists() else ""


class Admin:
    """Sets up tenants through Tiergate's public API, as an integrator would."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=10)

    def call(self, method: str, path: str, body: Any = None, expect: int = 201) -> Any:
        response = self.client.request(method, path, json=body)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def tenant(self, price: str, **members: str) -> tuple[str, dict[str, str]]:
        """A customer on `price` with the given members; returns its id and an access token per member."""
        customer = self.call("POST", "/v1/customers", {"name": "Acme", "currency": "USD"})["id"]
        self.call("POST", "/v1/subscriptions", {"customer": customer, "price": price, "trial_days": 0})
        users = {
            name: self.call(
                "POST",
                f"/v1/customers/{customer}/members",
                {"email": f"{name}@{customer}.example", "role": role},
            )["user"]
            for name, role in members.items()
        }
        self.synced()
        tokens = {
            name: self.call("POST", "/v1/tokens", {"customer": customer, "user": user})["access_token"]
            for name, user in users.items()
        }
        return customer, tokens

    def synced(self) -> None:
        """Wait until the engine has applied the newest event (it runs on the server's own loop)."""
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


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = nginx_binary()
    if binary is None:
        if IN_CI:
            pytest.fail("CI is set but nginx is not installed (add it to APT_PACKAGES in .ci/run)")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    with Stack(Path(tmp_path_factory.mktemp("forward")), binary) as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack: Stack) -> Iterator[Admin]:
    client = Admin(stack.tiergate)
    yield client
    client.close()


# -- end to end through nginx --------------------------------------------------------------------------
def test_allowed_request_reaches_the_app_with_identity(stack: Stack, admin: Admin) -> None:
    customer, tokens = admin.tenant("pro_monthly", owner="owner", editor="editor")
    with httpx.Client(base_url=stack.guarded) as client:
        response = client.get(
            "/api/projects/42?x=1", headers={**bearer(tokens["editor"]), "X-User": "usr_forged"}
        )
        assert response.status_code == 200, (response.text, stack.error_log())
        echoed = response.json()
        assert echoed["path"] == "/api/projects/42?x=1" and echoed["method"] == "GET"
        assert echoed["tenant"] == customer and echoed["plan"] == "pro" and echoed["roles"] == "editor"
        assert echoed["user"].startswith("usr_") and echoed["user"] != "usr_forged"
        # The original method is what is decided on, not the subrequest's GET: editors may update.
        assert client.patch("/api/projects/42", headers=bearer(tokens["editor"]), json={}).status_code == 200
        assert client.delete("/api/projects/42", headers=bearer(tokens["editor"])).status_code == 403
        assert client.delete("/api/projects/42", headers=bearer(tokens["owner"])).status_code == 200


def test_missing_or_bad_token_is_401_with_a_bearer_challenge(stack: Stack, admin: Admin) -> None:
    with httpx.Client(base_url=stack.guarded) as client:
        for headers in ({}, bearer("not-a-jwt"), bearer(KEY), {"Authorization": "Basic dXNlcjpwdw=="}):
            response = client.get("/api/projects", headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_viewer_cannot_write_and_gated_report_is_refused(stack: Stack, admin: Admin) -> None:
    # Basic has one seat: the viewer belongs to a Pro team, the owner's Basic tenant gates the reports.
    _, team = admin.tenant("pro_monthly", owner="owner", viewer="viewer")
    _, tokens = admin.tenant("basic_monthly", owner="owner")
    with httpx.Client(base_url=stack.guarded) as client:
        viewer, owner = bearer(team["viewer"]), bearer(tokens["owner"])
        assert client.get("/api/projects", headers=viewer).status_code == 200
        # nginx's subrequest is a GET; only X-Original-Method tells Tiergate this is a write.
        assert client.post("/api/projects", headers=viewer, json={"name": "x"}).status_code == 403
        assert client.get("/api/reports/basic", headers=owner).status_code == 200
        assert client.get("/api/reports/advanced/q3", headers=owner).status_code == 403
        assert client.get("/api/unknown", headers=owner).status_code == 403  # no route: denied
        assert client.get("/api/reports/basic/../advanced", headers=owner).status_code in {403, 400}
        assert client.get("/api/reports/basic/%2e%2e/advanced", headers=owner).status_code == 403


def test_gauge_quota_on_basic_turns_into_429(stack: Stack, admin: Admin) -> None:
    _, tokens = admin.tenant("basic_monthly", owner="owner")
    with httpx.Client(base_url=stack.guarded) as client:
        statuses = [
            client.post("/api/projects", headers=bearer(tokens["owner"]), json={}).status_code
            for _ in range(6)
        ]
        assert statuses == [200] * 5 + [429], stack.error_log()
        refused = client.post("/api/projects", headers=bearer(tokens["owner"]), json={})
        assert refused.status_code == 429 and refused.json()["code"] == "quota_exceeded"
        # A gauge frees up when a project is deleted, not at a time: no Retry-After to promise.
        assert "retry-after" not in refused.headers
        # Reads are still fine: only creation needs a projects unit.
        assert client.get("/api/projects", headers=bearer(tokens["owner"])).status_code == 200


def test_metered_quota_429_carries_retry_after_until_the_period_resets(stack: Stack, admin: Admin) -> None:
    customer, tokens = admin.tenant("basic_monthly", owner="owner")
    # Use up all but one of Basic's 10,000 API calls in one step, then go through nginx.
    taken = admin.call(
        "POST",
        "/v1/check",
        {"customer": customer, "feature": "api_calls", "quantity": 9_999, "consume": True},
        200,
    )
    assert taken["remaining"] == 1
    with httpx.Client(base_url=stack.guarded) as client:
        assert client.get("/api/projects", headers=bearer(tokens["owner"])).status_code == 200
        refused = client.get("/api/projects", headers=bearer(tokens["owner"]))
    assert refused.status_code == 429, stack.error_log()
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 32 * 86_400  # the end of the current monthly period
    assert refused.headers["x-auth-reason"] == "quota_exceeded"


def raw_get(base: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """GET with the request target sent exactly as written (httpx would resolve `..` and re-encode)."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("x-auth-reason") or response.read().decode()[:200]
    finally:
        connection.close()


# Issue 9, hole 4: spellings of the gated advanced report that backends read as the report itself, and
# paths no reading makes safe. nginx passes $request_uri untouched, so Tiergate sees them as sent.
GATED_SPELLINGS = [  # (a spelling of the advanced report, the basic report spelled alike)
    ("/api/reports/ADVANCED", "/api/reports/BASIC"),
    ("/api/reports/advanced;x=1", "/api/reports/basic;x=1"),
    ("/api/reports/advanced%20", "/api/reports/basic%20"),
    ("/api/reports/advanced.json", "/api/reports/basic.json"),
    ("/API/Reports/Advanced.JSON/", "/API/Reports/Basic.JSON/"),
    ("/api/reports/%61dvanced", "/api/reports/%62asic"),
    ("//api//reports/advanced./q3", "//api//reports/basic./q3"),
    ("/api/reports/advanced;jsessionid=1/q3", "/api/reports/basic;jsessionid=1/q3"),
]
AMBIGUOUS_PATHS = [
    "/api/reports/basic/../advanced",
    "/api/reports/./advanced",
    "/api/reports/basic/%2e%2e/advanced",
    "/api/reports/..;/advanced",
    "/api/reports/basic%2F..%2Fadvanced",
    "/api/reports/%2561dvanced",
]


def test_path_spellings_of_a_gated_route_are_refused_through_nginx(stack: Stack, admin: Admin) -> None:
    _, tokens = admin.tenant("basic_monthly", owner="owner")
    owner = bearer(tokens["owner"])
    assert raw_get(stack.guarded, "/api/reports/advanced", owner) == (403, "feature_not_in_plan")
    for path, basic in GATED_SPELLINGS:
        assert raw_get(stack.guarded, path, owner) == (403, "feature_not_in_plan"), path
        # The basic report in the same spelling reaches the app: nothing legitimate is refused.
        status, _ = raw_get(stack.guarded, basic, owner)
        assert status == 200, (basic, stack.error_log())
    for path in AMBIGUOUS_PATHS:
        assert raw_get(stack.guarded, path, owner) == (403, "bad_path"), path


# -- the authorizer's own contract (no nginx in the way) ----------------------------------------------
def test_traefik_and_envoy_styles_and_denial_bodies(stack: Stack, admin: Admin) -> None:
    # Basic has one seat: the viewer belongs to a Pro team, the owner's Basic tenant gates the reports.
    _, team = admin.tenant("pro_monthly", owner="owner", viewer="viewer")
    customer, tokens = admin.tenant("basic_monthly", owner="owner")
    forward = f"{stack.tiergate}/v1/authz/forward"
    with httpx.Client() as client:
        traefik = client.get(
            forward,
            headers={
                **bearer(tokens["owner"]),
                "X-Forwarded-Method": "GET",
                "X-Forwarded-Uri": "/api/projects",
            },
        )
        assert traefik.status_code == 200 and traefik.content == b""
        assert traefik.headers["x-auth-tenant"] == customer and traefik.headers["x-auth-roles"] == "owner"
        assert int(traefik.headers["x-auth-index-version"]) > 0
        # Envoy: original method, original path after the prefix.
        envoy = client.post(f"{forward}/api/projects", headers=bearer(team["viewer"]))
        assert envoy.status_code == 403
        problem = envoy.json()
        assert envoy.headers["content-type"].startswith("application/problem+json")
        assert (problem["code"], problem["reason"], problem["allowed"]) == (
            "no_permission",
            "no_permission",
            False,
        )
        assert client.delete(f"{forward}/api/projects/7", headers=bearer(tokens["owner"])).status_code == 200
        # Half an nginx pair would make a POST look like the subrequest's GET: refused.
        half = client.get(forward, headers={**bearer(tokens["owner"]), "X-Original-URI": "/api/projects"})
        assert (half.status_code, half.json()["code"]) == (403, "incomplete_forward_headers")
        gated = client.get(f"{forward}/api/reports/custom", headers=bearer(tokens["owner"]))
        assert (gated.status_code, gated.json()["code"]) == (403, "feature_not_in_plan")


# -- the route table (pure) ----------------------------------------------------------------------------
def test_route_table_matching() -> None:
    table = DEFAULT_TABLE
    match = table.resolve("GET", "/api/projects/42/files/a.txt?download=1")
    assert match is not None and (match.resource, match.action) == ("projects/42", "read")
    assert match.features == ("api_calls",) and match.consume
    head = table.resolve("HEAD", "/api/projects")
    assert head is not None and head.action == "read"  # GET routes answer HEAD too
    create = table.resolve("post", "//api//projects/")
    assert create is not None and create.features == ("projects", "api_calls")
    assert table.resolve("GET", "/api/nothing") is None
    assert table.resolve("OPTIONS", "/api/projects") is None
    with pytest.raises(BadPath):
        table.resolve("GET", "/api/projects/..%2Fadmin")
    with pytest.raises(BadPath):
        table.resolve("GET", "/api/projects/%2e%2e")
    any_method = load_routes([{"path": "/x/**", "resource": "x", "action": "read"}], unmatched="allow")
    assert any_method.resolve("TRACE", "/x") is not None and any_method.unmatched_allowed


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "api", "resource": "r", "action": "a"}, "must be a string starting with '/'"),
        ({"path": "/a/{id}", "resource": "r/{other}", "action": "a"}, "does not capture"),
        ({"path": "/a/*", "resource": "r", "action": "a"}, "only a trailing '/**'"),
        ({"path": "/a/{1x}", "resource": "r", "action": "a"}, "bad placeholder"),
        ({"path": "/a", "resource": "r", "action": "a", "method": "FETCH"}, "unknown method"),
        ({"path": "/a", "resource": "r", "action": "a", "consume": True}, "needs a `feature`"),
        ({"path": "/a", "resource": "r", "action": "a", "feature": "f", "quantity": 0}, "positive integer"),
        ({"path": "/a", "resource": "r", "action": "a", "feaure": "f"}, "unknown key"),
        ({"path": "/a", "resource": "", "action": "a"}, "non-empty strings"),
    ],
)
def test_route_table_validation_names_the_entry(entry: dict[str, Any], message: str) -> None:
    ok = {"path": "/ok", "resource": "ok", "action": "read"}
    with pytest.raises(RouteTableError) as error:
        load_routes([ok, entry])
    assert "forward route #1" in str(error.value) and message in str(error.value)
