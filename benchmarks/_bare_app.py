"""The baseline for bench_http_check.py: a bare Litestar app whose only route returns a constant JSON.

Served by the same server, worker count and flags as Tiergate, so the ratio isolates what Tiergate's
handlers (guard, body decoding, decision, encoding) cost on top of the framework and the server.

    uvicorn --app-dir benchmarks _bare_app:app
"""

from __future__ import annotations

from litestar import Litestar, get

CONSTANT = {"allowed": True, "reason": "bare"}


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, object]:
    return CONSTANT


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[bare, health], openapi_config=None)
