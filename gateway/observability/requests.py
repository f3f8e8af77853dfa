"""One ASGI middleware per request: its id (X-Request-ID) and its latency by route template.

Kept deliberately cheap (measured by `benchmarks/bench_metrics_overhead.py`): no Request object, no
header parsing beyond one scan of the raw list, one ContextVar set, and a dict lookup for the histogram's
labelled child (`Histogram.labels()` itself costs a few microseconds).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Send

from gateway.logs import REQUEST_ID
from gateway.observability.metrics import REQUEST_SECONDS

HEADER = b"x-request-id"
# An id from a proxy or client is kept when it is short and plain (it goes into logs and headers).
_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


# A random per-process prefix and a counter: unique across replicas and workers (96 random-enough bits
# in all), and a tenth of the cost of os.urandom per request.
PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{PREFIX}{next(_COUNTER) & 0xFFFFFFFF:08x}"


def incoming_id(scope: Any) -> str:
    for name, value in scope.get("headers", ()):
        if name == HEADER:
            return value.decode("ascii") if _ACCEPTABLE.fullmatch(value) else new_request_id()
    return new_request_id()


# Set in the scope by whoever already counts the request and gave it its id (the lean decision routes,
# gateway/entitlements/lean.py), so a request they hand on to the full stack is not counted twice.
OBSERVED = "tiergate.observed"


class RequestObserver:
    """Gives a request its id (the ContextVar for logs, the `X-Request-ID` response header) and observes
    its latency in `tiergate_http_request_duration_seconds` by route template."""

    def __init__(self) -> None:
        self.children: dict[tuple[str, str, int], Any] = {}

    async def run(self, app: Any, scope: Any, receive: Any, send: Any, template: str | None = None) -> None:
        started = time.perf_counter()
        scope[OBSERVED] = True
        request_id = incoming_id(scope)
        token = REQUEST_ID.set(request_id)
        header = (HEADER, request_id.encode("ascii"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            key = (scope["method"], template or scope.get("path_template") or "unmatched", status)
            child = self.children.get(key)
            if child is None:
                child = self.children[key] = REQUEST_SECONDS.labels(key[0], key[1], str(status))
            child.observe(time.perf_counter() - started)


def observe_requests(app: ASGIApp) -> ASGIApp:
    """Litestar middleware factory (runs after routing, so `path_template` names the route)."""
    observer = RequestObserver()

    # The scope is a plain dict here (typed as Any: Litestar's Scope union has no `method` on websockets).
    async def middleware(scope: Any, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OBSERVED in scope:
            await app(scope, receive, send)
            return
        await observer.run(app, scope, receive, send)

    return middleware
