"""Scale-out: three real `tiergate serve` replicas (subprocesses, each in its own process group) on one
PostgreSQL + Redis, production settings (no migrations on start, Redis for quotas and change nudges).

- A plan change and a policy edit made through replica 1 are answered by /v1/check on replicas 2 and 3
  within the propagation bound (the 1 s poll; the Redis nudge is what makes it faster).
- Quota counters are shared: units consumed on any replica count against the one limit.
- A tenant API key revoked through replica 1 is refused by replicas 2 and 3 within the bound, though both
  had it cached.
- One replica killed (kill -9 of its whole process group): the other two keep answering, and a client
  that moves a failed request to the next replica loses none.
- Two `tiergate worker` processes share one billing run (`SKIP LOCKED` batches) and bill each due
  subscription's period exactly once.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.db.migrate import upgrade_head
from gateway.db.session import Database
from gateway.demo import seed_demo
from gateway.kernel.clock import SystemClock
from tests.conftest import IN_CI, POSTGRES_URL, REDIS_URL, sibling_database

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        not (POSTGRES_URL and REDIS_URL) and not IN_CI, reason="needs PostgreSQL and Redis (always run in CI)"
    ),
]

KEY = "tg_sk_scale_out_0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}
# entitlements_poll_seconds (1 s) is the bound without a nudge; 1 s more for a loaded 2-core CI machine.
PROPAGATION_BOUND_SECONDS = 2.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_database(suffix: str) -> str:
    """A scratch database of its own, migrated once and seeded with the demo catalog and `KEY`."""
    name, url = sibling_database(suffix)

    async def go() -> None:
        admin = Database(POSTGRES_URL, pooled=False)
        async with admin.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await admin.dispose()
        db = Database(url, pooled=False)
        await upgrade_head(db)
        async with db.unit_of_work() as session:
            await seed_demo(session, SystemClock(), api_key=KEY)
        await db.dispose()

    asyncio.run(go())
    return url


class Replica:
    """One `tiergate serve` (granian) in its own process group, so os.killpg ends its workers too."""

    def __init__(self, database_url: str, redis_url: str, **extra_env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the replica
        env = {
            **os.environ,
            "TIERGATE_DATABASE_URL": database_url,
            "TIERGATE_REDIS_URL": redis_url,
            "TIERGATE_MIGRATE_ON_START": "false",
            "TIERGATE_SCHEDULER_ENABLED": "false",
            "TIERGATE_LOG_LEVEL": "WARNING",
            # These tests are about what replicas share, not the per-check latency budget: the 50 ms
            # default timed a consume out on a loaded CI host (quota_unavailable, used None).
            "TIERGATE_REDIS_QUOTA_TIMEOUT_SECONDS": "5",
            **extra_env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from gateway.cli import main; main()", "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                tail = self.log.read().decode(errors="replace")[-3000:]
                raise AssertionError(f"tiergate serve exited with {self.process.returncode}:\n{tail}")
            try:
                if httpx.get(f"{self.url}/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("tiergate serve did not come up")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()


def replicas_on(database_url: str, redis_url: str, n: int, **extra_env: str) -> list[Replica]:
    started = [Replica(database_url, redis_url, **extra_env) for _ in range(n)]
    try:
        for replica in started:  # they start side by side; this waits for the slowest
            replica.wait_ready()
    except BaseException:
        for replica in started:
            replica.kill()
        raise
    return started


@pytest.fixture(scope="module")
def replicas() -> Iterator[list[Replica]]:
    url = prepare_database("scaleout")
    started = replicas_on(url, REDIS_URL, 3)
    try:
        yield started
    finally:
        for replica in started:
            replica.kill()


def call(replica: Replica, method: str, path: str, body: Any = None) -> Any:
    response = httpx.request(method, replica.url + path, json=body, headers=HEADERS, timeout=10)
    assert response.status_code < 300, response.text
    return response.json()


def seconds_until(replica: Replica, check: dict[str, Any], allowed: bool) -> float:
    """How long until `replica` answers `check` with `allowed` (fails past the propagation bound)."""
    t0 = time.monotonic()
    while True:
        answer = call(replica, "POST", "/v1/check", check)
        waited = time.monotonic() - t0
        if answer["allowed"] is allowed:
            return waited
        assert waited < PROPAGATION_BOUND_SECONDS, f"{replica.url} still answers {answer} after {waited:.2f}s"
        time.sleep(0.01)


def test_changes_through_one_replica_reach_the_others_within_the_bound(replicas: list[Replica]) -> None:
    r1, r2, r3 = replicas
    customer = call(r1, "POST", "/v1/customers", {"name": "Scaled", "currency": "USD"})["id"]
    sub = call(r1, "POST", "/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})["id"]
    member = {"email": "v@scaled.example", "role": "viewer"}
    viewer = call(r1, "POST", f"/v1/customers/{customer}/members", member)
    advanced = {"customer": customer, "feature": "reporting_advanced"}
    create = {"customer": customer, "user": viewer["user"], "resource": "projects", "action": "create"}
    for replica in (r2, r3):
        seconds_until(replica, {**create, "action": "read"}, True)  # the member has arrived
        assert call(replica, "POST", "/v1/check", advanced)["reason"] == "feature_not_in_plan"
        denied = call(replica, "POST", "/v1/check", create)
        assert (denied["allowed"], denied["reason"]) == (False, "no_permission")

    # A plan change through replica 1: Pro grants advanced reporting on 2 and 3 within the bound.
    call(r1, "POST", f"/v1/subscriptions/{sub}/plan_change", {"price": "pro_monthly", "timing": "now"})
    for replica in (r2, r3):
        assert seconds_until(replica, advanced, True) < PROPAGATION_BOUND_SECONDS
        assert call(replica, "POST", "/v1/check", advanced)["plan"] == "pro"

    # A policy edit through replica 1: viewers may now create projects, everywhere.
    rule = {"type": "permission", "role": "viewer", "resource": "projects", "action": "create"}
    version = call(r1, "POST", "/v1/policies/edits", {"add": [rule], "note": "viewers create projects"})
    for replica in (r2, r3):
        assert seconds_until(replica, create, True) < PROPAGATION_BOUND_SECONDS
        answer = call(replica, "POST", "/v1/check", create)
        assert (answer["reason"], answer["role"]) == ("allowed", "viewer")
    assert version["version"] == 2


def test_a_key_revoked_through_one_replica_is_refused_by_the_others_within_the_bound(
    replicas: list[Replica],
) -> None:
    r1, r2, r3 = replicas
    customer = call(r1, "POST", "/v1/customers", {"name": "Keyed", "currency": "USD"})["id"]
    key = call(
        r1, "POST", "/v1/api_keys", {"name": "app", "scopes": ["customers:read"], "customer": customer}
    )
    own = {"Authorization": f"Bearer {key['secret']}"}
    for replica in (r2, r3):  # both replicas know (and cache) the key
        assert httpx.get(f"{replica.url}/v1/customers/{customer}", headers=own, timeout=10).status_code == 200
    call(r1, "POST", f"/v1/api_keys/{key['id']}/revoke", {})
    t0 = time.monotonic()
    for replica in (r2, r3):
        while True:
            status = httpx.get(f"{replica.url}/v1/customers/{customer}", headers=own, timeout=10).status_code
            waited = time.monotonic() - t0
            if status == 401:
                break
            assert status == 200 and waited < PROPAGATION_BOUND_SECONDS, (replica.url, status, waited)
            time.sleep(0.01)


def test_quota_counters_are_shared_by_every_replica(replicas: list[Replica]) -> None:
    r1, r2, r3 = replicas
    customer = call(r1, "POST", "/v1/customers", {"name": "Quota", "currency": "USD"})["id"]
    call(r1, "POST", "/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    consume = {"customer": customer, "feature": "projects", "consume": True}  # Basic: 5 projects
    for replica in (r1, r2, r3):
        seconds_until(replica, {"customer": customer, "feature": "projects"}, True)
    used = [call(replica, "POST", "/v1/check", consume)["used"] for replica in (r1, r2, r3, r1, r2)]
    assert used == [1, 2, 3, 4, 5]
    over = call(r3, "POST", "/v1/check", consume)
    assert (over["allowed"], over["reason"], over["limit"], over["used"], over["remaining"]) == (
        False,
        "quota_exceeded",
        5,
        5,
        0,
    )
    released = call(r2, "POST", "/v1/check/release", {"customer": customer, "feature": "projects"})
    assert released["used"] == 4
    again = call(r1, "POST", "/v1/check", consume)
    assert (again["allowed"], again["used"]) == (True, 5)


def test_one_replica_killed_the_others_keep_answering(replicas: list[Replica]) -> None:
    r1, r2, r3 = replicas
    customer = call(r1, "POST", "/v1/customers", {"name": "Survivor", "currency": "USD"})["id"]
    call(r1, "POST", "/v1/subscriptions", {"customer": customer, "price": "basic_monthly"})
    check = {"customer": customer, "feature": "reporting_basic"}
    for replica in replicas:
        seconds_until(replica, check, True)

    # Round robin over the three; a request that fails on one replica moves to the next (as a load
    # balancer retries an idempotent request). Replica 3 is killed a third of the way through.
    answered: list[int] = []
    moved = 0
    with httpx.Client(headers=HEADERS, timeout=5) as client:
        for i in range(90):
            if i == 30:
                r3.kill()
            for attempt in range(3):
                replica = replicas[(i + attempt) % 3]
                try:
                    response = client.post(replica.url + "/v1/check", json=check)
                except httpx.TransportError:
                    moved += 1
                    continue
                assert response.status_code == 200 and response.json()["allowed"] is True, response.text
                answered.append(replicas.index(replica))
                break
    assert len(answered) == 90, "a request was lost"
    assert moved == 20  # every third request from the 30th on went to the dead replica first
    assert answered[30:].count(2) == 0 and answered[30:].count(0) == 40 and answered[30:].count(1) == 20
    assert r3.process.returncode == -signal.SIGKILL
    # The survivors still take writes and see each other's.
    call(r2, "POST", "/v1/check", {"customer": customer, "feature": "projects", "consume": True})
    assert call(r1, "POST", "/v1/check", {"customer": customer, "feature": "projects"})["used"] == 1


class Worker:
    """One `tiergate worker` process (no Redis: its jobs run in process, every `interval` seconds)."""

    def __init__(self, database_url: str, interval: float) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the worker
        env = {
            **os.environ,
            "TIERGATE_DATABASE_URL": database_url,
            "TIERGATE_REDIS_URL": "",
            "TIERGATE_MIGRATE_ON_START": "false",
            "TIERGATE_SCHEDULER_INTERVAL_SECONDS": str(interval),
            "TIERGATE_BILLING_RUN_BATCH_SIZE": "2",  # small batches, so both workers find some
            "TIERGATE_LOG_LEVEL": "INFO",
            "TIERGATE_LOG_FORMAT": "json",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from gateway.cli import main; main()", "worker"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def renewals(self) -> int:
        """Steps this worker's billing runs took, from its own log lines."""
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        return sum(int(n) for n in re.findall(r"billing run: (\d+) steps", text))

    def says(self, text: str) -> bool:
        self.log.seek(0)
        return text in self.log.read().decode(errors="replace")

    def tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()


def test_two_workers_share_the_billing_run_and_bill_each_subscription_once() -> None:
    url = prepare_database("workers")
    [replica] = replicas_on(url, REDIS_URL, 1)
    try:
        subs = []
        for n in range(40):  # one live subscription per customer
            customer = call(replica, "POST", "/v1/customers", {"name": f"Many {n}", "currency": "USD"})["id"]
            body = {"customer": customer, "price": "basic_monthly", "trial_days": 0}
            subs.append(call(replica, "POST", "/v1/subscriptions", body)["id"])
    finally:
        replica.kill()

    async def make_due() -> None:
        db = Database(url, pooled=False)
        async with db.unit_of_work() as session:  # their first periods end now: each renews once
            await session.execute(
                text(
                    "UPDATE subscriptions SET current_period_end = now() - interval '100 milliseconds', "
                    "next_action_at = now() - interval '100 milliseconds' WHERE id = ANY(:ids)"
                ),
                {"ids": subs},
            )
        await db.dispose()

    async def renewal_invoices() -> dict[str, int]:
        db = Database(url, pooled=False)
        async with db.unit_of_work() as session:
            rows = await session.execute(
                text(
                    "SELECT subscription_id, count(*) FROM invoices "
                    "WHERE billing_reason = 'subscription_cycle' GROUP BY subscription_id"
                )
            )
            counted = {str(sub): int(n) for sub, n in rows.all()}
        await db.dispose()
        return counted

    # Passes every 0.1 s: the 20 batches of 2 take longer than that, so the second worker ticks while the
    # first is still at it (at 0.5 s a fast machine finished the whole run in one worker's pass).
    workers = [Worker(url, interval=0.1), Worker(url, interval=0.1)]
    try:
        # Both workers running their loops before anything is due: a worker that started seconds after
        # the other (a loaded CI machine) would otherwise find the whole run done.
        deadline = time.monotonic() + 60
        while not all(worker.says("running the jobs in process") for worker in workers):
            assert time.monotonic() < deadline, f"a worker did not start: {workers[1].tail()}"
            time.sleep(0.2)
        time.sleep(1.0)  # a pass or two of each loop, and the periods end after the last one began
        asyncio.run(make_due())
        deadline = time.monotonic() + 90
        while len(asyncio.run(renewal_invoices())) < len(subs):
            assert time.monotonic() < deadline, f"not every subscription renewed: {workers[0].tail()}"
            time.sleep(0.5)
        time.sleep(2)  # a few more passes: nothing more must be billed
        counted = asyncio.run(renewal_invoices())
        assert counted == dict.fromkeys(subs, 1)  # each subscription's period billed once
        shares = [worker.renewals() for worker in workers]
        assert sum(shares) >= len(subs) and all(share > 0 for share in shares), shares
    finally:
        for worker in workers:
            worker.stop()
