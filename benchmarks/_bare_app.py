"""The baseline for bench_http_check.py: a bare Litestar app whose routes return a constant JSON
(`GET /bare`, and `POST /bare` taking a JSON body, the twin of a POST check with the same body).

Served by the same server, worker count and flags as Tiergate, so the ratio isolates what Tiergate's
handlers (guard, body decoding, decision, encoding) cost on top of the framework and the server.

    uvicorn --app-dir benchmarks _bare_app:app
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get, post

CONSTANT = {"allowed": True, "reason": "bare"}


@get("/bare", sync_to_thread=False)
def bare() -> dict[str, object]:
    return CONSTANT


@post("/bare", status_code=200, sync_to_thread=False)
def bare_post(data: dict[str, Any]) -> dict[str, object]:
    """The twin of a POST check: Litestar reads and decodes the same JSON body, answers a constant."""
    return CONSTANT


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[bare, health], openapi_config=None)
