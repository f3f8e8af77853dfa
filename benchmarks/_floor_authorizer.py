"""The floor for bench_forward_auth.py: an authorizer that decides nothing. Every request is answered
200 with an `X-Auth-User` header and an empty body, as Tiergate answers an admitted forward-auth request.

Served by the same server, worker count and flags as Tiergate, behind the same nginx `auth_request`
configuration, so its added latency is what the subrequest to a Python server costs on this machine
before any checking: the difference to Tiergate's is Tiergate's own share.

    granian --interface asgi --working-dir benchmarks _floor_authorizer:app
"""

from __future__ import annotations

from typing import Any

_HEADERS = [
    (b"x-auth-user", b"floor"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"0"),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b""})
