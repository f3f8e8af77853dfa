"""RFC 7643/7644 compliance: scim2-tester against Tiergate served by uvicorn over a real loopback socket.

Every check scim2-tester runs for the features /ServiceProviderConfig declares must pass. One adaptation,
on the tester's side only: its data generator fills `userName` with a random UUID (a SCIM schema cannot
say "e-mail"), while Tiergate's userName *is* the member's e-mail. The tester takes example values from
the client's models, so the test hands it the models discovered from our /Schemas with a generator of
unique e-mail addresses as userName examples. Nothing on the server is relaxed for the tester.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
import uvicorn
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import ScimProvider
from scim2_tester import Status, check_server

from gateway.all_models import Base
from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database

ADMIN = "tg_sk_scim_tester_admin_0123456789"
logging.getLogger("httpx2").setLevel(logging.WARNING)


class UniqueEmails:
    """A sequence `random.choice` can draw from: every item is a fresh e-mail address."""

    def __len__(self) -> int:
        return 2**31

    def __getitem__(self, index: int) -> str:
        return f"{uuid.uuid4().hex[:12]}.{index}@tester.example"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """Tiergate on SQLite, served by uvicorn on a free loopback port in a thread of its own."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'scim.sqlite3'}"

    async def schema() -> None:
        db = Database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        from gateway.demo import seed_catalog
        from gateway.kernel.clock import SystemClock

        async with db.unit_of_work() as session:
            await seed_catalog(session, SystemClock())
        await db.dispose()

    asyncio.run(schema())
    settings = Settings(
        database_url=url, migrate_on_start=False, scheduler_enabled=False, bootstrap_api_key=ADMIN
    )
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:
        raise AssertionError("uvicorn did not start")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _tenant_with_token(base: str) -> str:
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    customer = admin.post("/v1/customers", json={"name": "Compliance Corp", "currency": "USD"}).json()
    # Enterprise: unlimited seats, so the tester's many creations all fit.
    sub = admin.post(
        "/v1/subscriptions", json={"customer": customer["id"], "price": "enterprise_monthly", "trial_days": 0}
    )
    assert sub.status_code == 201, sub.text
    token = admin.post(f"/v1/customers/{customer['id']}/scim_tokens", json={"name": "tester"})
    assert token.status_code == 201, token.text
    return str(token.json()["secret"])


def _client(base: str, secret: str) -> SyncSCIMClient:
    http = httpx2.Client(
        base_url=f"{base}/scim/v2", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    client = SyncSCIMClient(http)
    client.discover()
    discovered = client.provider
    user = discovered.model_for("urn:ietf:params:scim:schemas:core:2.0:User")
    assert user is not None
    user.model_fields["user_name"].examples = UniqueEmails()  # type: ignore[assignment]
    client.provider = ScimProvider(
        discovered.models, discovered.resource_types, discovered.config, discovered.policy
    )
    return client


@pytest.mark.slow
def test_scim2_tester_passes_every_applicable_check(served: str) -> None:
    secret = _tenant_with_token(served)
    results = check_server(_client(served, secret))
    statuses = Counter(r.status for r in results)
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    passed = sum(n for s, n in statuses.items() if s not in (Status.ERROR, Status.CRITICAL, Status.SKIPPED))
    print(
        f"\nscim2-tester: {passed}/{len(results)} checks passed, {statuses[Status.SKIPPED]} skipped, "
        f"{len(failed)} failed"
    )
    for r in results:
        if r.status is Status.SKIPPED:
            print(f"  skipped: {r.title} ({r.resource_type}): {r.reason}")
    assert not failed, "\n".join(f"{r.title} [{r.resource_type}]: {r.reason}" for r in failed)
    assert passed == len(results) >= 69
