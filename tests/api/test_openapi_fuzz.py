"""Schemathesis over the whole OpenAPI document, against a real server on loopback with the demo data.

Finds what hand-written tests miss: any 5xx, a response that does not match its documented schema or
media type, a status code the document does not declare, malformed input that is accepted.

Every case is sent twice: as a tenant-scoped key of one demo customer (the key kind an integrating app
holds), then as the platform's bootstrap key, which the API refuses to revoke, so no fuzzed call can lock
the run out (a revoked key once left 48 operations answering only 401/403).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.identity.service import ApiKeyService
from gateway.kernel.clock import SystemClock

KEY = "tg_sk_schemathesis_0123456789abcdef"  # the bootstrap key: every scope, not revocable via the API
TENANT_KEY = "tg_sk_schemathesis_tenant_0123456789"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"

    async def prepare() -> None:
        from gateway.db.migrate import upgrade_head

        db = Database(url)
        await upgrade_head(db)
        async with db.unit_of_work() as session:
            demo = await seed_demo(session, SystemClock(), api_key=KEY)
            tenant = next(iter(demo.customers.values()))
            await ApiKeyService(session, SystemClock()).create(
                name="fuzz tenant", scopes=["*"], tenant_id=tenant, secret=TENANT_KEY
            )
        await db.dispose()

    asyncio.run(prepare())
    settings = Settings(
        database_url=url,
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=KEY,
        # GET /v1/changes streams until this (300 s in production): each fuzzed call reads a whole stream.
        changes_stream_max_seconds=0.2,
        changes_heartbeat_seconds=0.1,
    )
    app = create_app(settings)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    else:
        pytest.fail("the server under test did not start")
    yield base
    uv.should_exit = True
    thread.join(timeout=10)


# The document is what the app generates (the same one it serves at /docs/openapi.json); building the app
# touches no database, so it can be loaded at import time for parametrisation.
schema = schemathesis.openapi.from_dict(
    create_app(
        Settings(database_url="sqlite+aiosqlite://", migrate_on_start=False)
    ).openapi_schema.to_schema()
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# Not `negative_data_rejection`: it counts an unknown-but-harmless query value such as `active=null` on an
# optional filter as "accepted negative data", which is Litestar's lenient parsing, not a bug we can act on.
# Unknown query *names* are refused (web/strict.py) and malformed bodies are 422, tested in test_errors.py.


# Forward auth authenticates the end user's access token, not the API key: a 401/403 there is the
# documented answer to a fuzzed request, not a lost key. Likewise a staff sign-in: its credential is the
# one-time login link in the body (401 when it is not one).
OTHER_CREDENTIALS = ("/v1/authz/forward", "/v1/staff_sessions")


def sent_with(response: Any, key: str) -> bool:
    return bool(response.request.headers.get("Authorization") == f"Bearer {key}")


# Each generated case is sent twice, as the tenant key and as the bootstrap key: 15 cases per operation
# make the 30 calls of the one-key run this replaces (a second hypothesis run per operation would double
# the per-operation set-up that dominates the time here).
@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, server: str) -> None:
    checks_auth = not case.path.startswith(OTHER_CREDENTIALS)

    as_tenant = case.call(base_url=server, headers={"Authorization": f"Bearer {TENANT_KEY}"})
    case.validate_response(as_tenant, checks=CHECKS)
    # 403 is the answer to a platform-only operation; 401 would mean the key itself stopped working.
    if checks_auth and sent_with(as_tenant, TENANT_KEY):
        assert as_tenant.status_code != 401, ("tenant key", case.method, case.path, as_tenant.text)

    as_platform = case.call(base_url=server, headers={"Authorization": f"Bearer {KEY}"})
    case.validate_response(as_platform, checks=CHECKS)
    # The bootstrap key holds every scope and cannot be revoked: a 401/403 to a call that carried it
    # means coverage was lost. (Schemathesis also sends some calls without a key, on purpose.)
    if checks_auth and sent_with(as_platform, KEY):
        assert as_platform.status_code not in (401, 403), (case.method, case.path, as_platform.text)
