"""`GET /metrics` (Prometheus text format) and, optionally, the same on a port of its own.

Who may scrape (README "Operations"): on the service port, a platform API key with the
`operations:read` scope (Prometheus sends it: `authorization: {credentials: tg_sk_…}`), through the
permission matrix like every other route. Or set `metrics_port`: an unauthenticated listener on
`metrics_host:metrics_port` (default 127.0.0.1) for a scraper on a private network, never published.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

from litestar import Response, get
from litestar.datastructures import State

from gateway.observability.metrics import (
    CONTENT_TYPE,
    JOB_QUEUE_DEPTH,
    export_process_state,
    render,
)

log = logging.getLogger("tiergate.metrics")


async def refresh(state: State) -> None:
    """Bring the state gauges up to date in this process (the event counters are always current)."""
    exporter = state.get("metrics_exporter")
    if exporter is not None:
        exporter()
    export_process_state(state.get("relay"))
    gauges = state.get("metrics_db")
    if gauges is not None:
        await gauges.refresh()
    jobs = state.get("jobs")
    if jobs is not None:
        for name, depth in (await jobs.queue_depths()).items():
            JOB_QUEUE_DEPTH.labels(name).set(depth)


@get(
    "/metrics",
    include_in_schema=False,
    cache_control=None,
    opt={"read_only": True},
)
async def metrics_endpoint(state: State) -> Response[bytes]:
    await refresh(state)
    return Response(render(), media_type=CONTENT_TYPE)


METRICS_HANDLERS = [metrics_endpoint]


async def _answer(state: State, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        request_line = await asyncio.wait_for(reader.readline(), 5)
        while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
            pass
        parts = request_line.split()
        if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
            await refresh(state)
            body, status = render(), b"200 OK"
            content_type = CONTENT_TYPE.encode()
        else:
            body, status, content_type = b"not found\n", b"404 Not Found", b"text/plain"
        writer.write(
            b"HTTP/1.1 "
            + status
            + b"\r\ncontent-type: "
            + content_type
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\nconnection: close\r\n\r\n"
            + body
        )
        await writer.drain()
    except Exception:  # one broken scrape must not take the listener down
        log.debug("metrics listener: request failed", exc_info=True)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def metrics_listener(state: State, host: str, port: int) -> AsyncIterator[Any]:
    """The open scrape port. Every worker binds it with SO_REUSEPORT; in multiprocess mode any of them
    answers with all workers' values."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    server = await asyncio.start_server(lambda r, w: _answer(state, r, w), sock=sock)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
