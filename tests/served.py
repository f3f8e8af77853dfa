"""A replica served by uvicorn on a loopback socket *in the test's own event loop*, for tests that need
truly concurrent requests: Litestar's AsyncTestClient runs the app in a portal thread and answers one
request at a time, so `asyncio.gather` over it never interleaves two requests inside the app."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import uvicorn
from litestar import Litestar

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[Api]:
    """Serve `app` (lifespan included) until the block ends; yields an `Api` speaking to it over HTTP."""
    # Keep-alive far longer than any pause in a test: with uvicorn's 5 s default, a test that spent ~5 s
    # elsewhere (two collectors charging twenty invoices) sent its next request on a pooled connection just
    # as the server closed it ("Server disconnected without sending a response").
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=_free_port(),
        log_level="warning",
        lifespan="on",
        timeout_keep_alive=300,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        if server.started or task.done():
            break
        await asyncio.sleep(0.025)
    assert server.started, "the replica under test did not start"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{config.port}", limits=limits, timeout=30
        ) as client:
            yield Api(client, ADMIN_KEY)  # type: ignore[arg-type]
    finally:
        server.should_exit = True
        server.force_exit = True  # a failed test may leave a request hanging: do not wait for it
        await task


# Fixtures: import them into a test module (or a conftest) to use them.
@pytest.fixture
async def replica(
    settings: Settings, clock: FrozenClock, db: Database
) -> Callable[..., AbstractAsyncContextManager[Api]]:
    """`async with replica() as api:` a served app over the test's database (the demo catalog seeded);
    `replica(settings)` serves another one with its own settings (a second replica)."""
    from gateway.demo import seed_catalog

    seeded = False

    @asynccontextmanager
    async def start(own: Settings | None = None) -> AsyncIterator[Api]:
        nonlocal seeded
        app = create_app(own or settings, clock=clock, db=db)
        async with serving(app) as api:
            if not seeded:
                async with db.unit_of_work() as session:
                    await seed_catalog(session, clock)
                seeded = True
            api.app = app  # type: ignore[attr-defined]
            yield api

    return start


@pytest.fixture
async def served_api(replica: Callable[..., AbstractAsyncContextManager[Api]]) -> AsyncIterator[Api]:
    async with replica() as api:
        yield api
