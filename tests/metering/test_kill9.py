"""Issue 12: 0 lost, 0 doubled across kill -9. A real `tiergate serve` process on PostgreSQL takes a
stream of usage events from concurrent clients that retry every batch they did not get an answer for;
the process is SIGKILLed twice mid-stream and started again. Afterwards the meter's total (roll-ups and
raw events alike) equals the number of distinct events sent."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import text

from gateway.db.session import Database
from gateway.metering.queries import usage_over
from tests.conftest import ADMIN_KEY, IN_CI, POSTGRES_URL

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL and not IN_CI, reason="needs PostgreSQL (always in CI)"),
]

EVENTS = int(os.environ.get("TIERGATE_KILL9_EVENTS", "50000"))
BATCH = 500
SENDERS = 4
HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """`tiergate serve` as a subprocess on a fixed port (restarted on the same one)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.env = {
            **os.environ,
            "TIERGATE_DATABASE_URL": POSTGRES_URL,
            "TIERGATE_REDIS_URL": "",
            "TIERGATE_BOOTSTRAP_API_KEY": ADMIN_KEY,
            "TIERGATE_MIGRATE_ON_START": "false",
            "TIERGATE_SCHEDULER_ENABLED": "false",
            "TIERGATE_RELAY_ENABLED": "false",
            "TIERGATE_LOG_LEVEL": "WARNING",
        }

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from gateway.cli import main; main()",
            "serve",
            "--port",
            str(self.port),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            # Its own process group: `tiergate serve` (granian) runs its worker in a child process, which
            # a SIGKILL of the parent alone would leave alive and answering.
            start_new_session=True,
        )
        async with httpx.AsyncClient() as client:
            for _ in range(3600):  # up to 3 minutes: the machine may be loaded
                try:
                    if (await client.get(f"http://127.0.0.1:{self.port}/health/live")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("tiergate serve did not come up")

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)  # kill -9 of every process of the service

    async def wait(self) -> None:
        if self.process is not None:
            await self.process.wait()


@pytest.fixture
async def service(postgres_db: Database) -> AsyncIterator[Service]:
    svc = Service()
    await svc.start()
    try:
        yield svc
    finally:
        if svc.process is not None and svc.process.returncode is None:
            svc.kill()
        await svc.wait()


async def test_a_stream_survives_two_kill_9s_with_nothing_lost_and_nothing_doubled(
    service: Service, postgres_db: Database
) -> None:
    base = f"http://127.0.0.1:{service.port}"
    async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as client:
        customer = (await client.post("/v1/customers", json={"name": "Streamer"})).json()["id"]
        created = await client.post(
            "/v1/meters", json={"key": "calls", "event_type": "call", "aggregation": "count"}
        )
        assert created.status_code == 201, created.text
    # Every 10th batch also carries 50 events of the batch before it (a client's own re-send).
    batches: list[list[dict[str, object]]] = []
    for start in range(0, EVENTS, BATCH):
        batch = [
            {"id": f"e{i}", "source": "stream", "type": "call", "subject": customer}
            for i in range(start, min(start + BATCH, EVENTS))
        ]
        if batches and len(batches) % 10 == 0:
            batch += batches[-1][:50]
        batches.append(batch)
    queue: asyncio.Queue[list[dict[str, object]]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)
    acknowledged = 0
    retries = 0
    kills_at = {len(batches) // 3, 2 * len(batches) // 3}
    restarting = asyncio.Event()
    restarting.set()  # set = the service is up

    async def sender() -> None:
        nonlocal acknowledged, retries
        async with httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=30) as client:
            while True:
                try:
                    batch = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                while True:  # until this batch is acknowledged
                    await restarting.wait()
                    try:
                        response = await client.post("/v1/usage_events", json={"events": batch})
                    except httpx.TransportError:
                        retries += 1
                        await asyncio.sleep(0.05)
                        continue
                    if response.status_code != 200:
                        retries += 1
                        continue
                    assert all(r["status"] in (200, 201) for r in response.json()["data"])
                    acknowledged += 1
                    break

    async def killer() -> None:
        while kills_at:
            if acknowledged >= min(kills_at):
                kills_at.discard(min(kills_at))
                restarting.clear()
                service.kill()  # mid-stream: other senders have batches in flight
                await service.wait()
                await service.start()
                restarting.set()
            await asyncio.sleep(0.01)

    kill_task = asyncio.create_task(killer())
    await asyncio.gather(*(sender() for _ in range(SENDERS)))
    await asyncio.wait_for(kill_task, timeout=60)
    assert acknowledged == len(batches)
    assert retries >= 1, "the kills interrupted no request: the test proved nothing"

    async with postgres_db.unit_of_work() as session:
        stored = (await session.execute(text("SELECT count(*) FROM usage_events"))).scalar_one()
        keys = (await session.execute(text("SELECT count(*) FROM usage_event_keys"))).scalar_one()
        now = datetime.now(UTC)
        start, end = now - timedelta(days=1), now + timedelta(days=1)
        rolled = await usage_over(session, tenant_id=customer, meter="calls", start=start, end=end)
        raw = await usage_over(session, tenant_id=customer, meter="calls", start=start, end=end, raw=True)
    assert (stored, keys) == (EVENTS, EVENTS)
    assert rolled.totals == raw.totals == {(): Decimal(EVENTS)}
