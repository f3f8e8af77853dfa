"""The lean routes: `POST /v1/check`, `POST /v1/check/batch` and `GET /v1/authz/forward` answered ahead of
Litestar's general stack (CORS, exception middleware, routing, idempotency middleware, guards, the body
hook, dependency injection, response objects), which cost 3-8× the decision itself.

Nothing is decided differently here. The code that decides is the routes' own:
* the key is admitted by `gateway.identity.http.admit`, the one guard's decision (permission matrix, key
  cache, scopes; 401/403/503 problems rendered by `gateway.web.problems.domain_problem`);
* the checks are `gateway.entitlements.http.decide_check` / `decide_batch` (tenant scoping, the consume
  scope, one pinned view per batch), forward auth is `gateway.entitlements.forward.forward_decision`;
* bodies are decoded with the same strict msgspec types the central body check enforces.

Anything off the happy path goes to the full stack, which then answers exactly as for any route: another
method or path spelling, a query string, an `Origin` (CORS) or `Idempotency-Key` header, a `root_path`, a
body that does not decode strictly into the request type (the full stack names the problem and field), a
body over the size limit. The body already read is handed on unchanged. Tests
(`tests/entitlements/test_lean_routes.py`) compare both paths byte for byte.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.serialization import encode_json

from gateway.entitlements import schemas as s
from gateway.entitlements.batch_decode import decode_batch
from gateway.entitlements.forward import PREFIX as FORWARD_PATH
from gateway.entitlements.forward import forward_decision
from gateway.entitlements.http import decide_batch, decide_check
from gateway.entitlements.service import CheckService
from gateway.identity.http import admit
from gateway.kernel.errors import DomainError
from gateway.web.problems import PROBLEM_MEDIA_TYPE, domain_problem, internal_problem, problem_body

log = logging.getLogger("tiergate.errors")

CHECK_PATH = "/v1/check"
BATCH_PATH = "/v1/check/batch"
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
# Runs a lean route as the full stack's request middleware would (request id, latency histogram):
# (app, scope, receive, send, route template). Handed in by the composition root (gateway.observability
# is a layer above this one).
Observe = Callable[[ASGIApp, Any, Any, Any, str], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_PROBLEM = [(b"content-type", PROBLEM_MEDIA_TYPE.encode())]
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_TEXT_EMPTY = (*_TEXT, (b"content-length", b"0"))
# Headers that make the full stack answer differently (CORS, an idempotent replay): left to it.
_FULL_STACK_HEADERS = (b"origin", b"idempotency-key")
# Depth of a strictly decoded body: a check is one object, a batch an object > list > objects.
_DEPTH = {CHECK_PATH: 1, BATCH_PATH: 3}


class _TooLarge(Exception):
    """The body outgrew the limit while being read: what was read so far, and whether more is coming."""

    def __init__(self, read: bytes, more: bool) -> None:
        self.read = read
        self.more = more


class LeanDecisions:
    """ASGI front of a Tiergate app (installed as its `asgi_handler`, inside `Litestar.__call__`): answers
    the three decision routes itself and hands everything else to `inner`, the app's own handler."""

    def __init__(self, app: Litestar, inner: ASGIApp, observe: Observe | None = None) -> None:
        self.inner = inner
        self.state = app.state
        settings = app.state.get("settings")
        self.max_body = int(getattr(settings, "request_max_body_bytes", 1_048_576))
        self.max_depth = int(getattr(settings, "request_max_json_depth", 32))
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            CHECK_PATH: msgspec.json.Decoder(s.CheckRequest, strict=True),
        }
        self._encoder = msgspec.json.Encoder()
        self._observe = observe or _unobserved

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            path = scope["path"]
            if path in (CHECK_PATH, BATCH_PATH):
                if scope["method"] == "POST" and not scope.get("query_string"):
                    headers = _first_values(scope)
                    if not any(h in headers for h in _FULL_STACK_HEADERS):
                        # The request id and the latency histogram, as the full stack's middleware gives
                        # them (each path is its own route template); a request handed on from here to the
                        # full stack is not counted again there.
                        await self._observe(self._checker(path, headers), scope, receive, send, path)
                        return
            elif path == FORWARD_PATH and scope["method"] == "GET" and not scope.get("query_string"):
                headers = _first_values(scope)
                if b"origin" not in headers:
                    await self._observe(self._forwarder(headers), scope, receive, send, path)
                    return
        await self.inner(scope, receive, send)

    def _checker(self, path: str, headers: dict[bytes, bytes]) -> ASGIApp:
        async def check(scope: Any, receive: Any, send: Any) -> None:
            await self._check(path, headers, scope, receive, send)

        return check

    def _forwarder(self, headers: dict[bytes, bytes]) -> ASGIApp:
        async def forward(scope: Any, receive: Any, send: Any) -> None:
            await self._forward(headers, scope, send)

        return forward

    # -- the checks ---------------------------------------------------------------------------------

    async def _check(
        self, path: str, headers: dict[bytes, bytes], scope: Any, receive: Any, send: Any
    ) -> None:
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await self.inner(scope, receive, send)  # the full stack refuses it (413) without reading
            return
        try:
            raw = await _read_body(receive, self.max_body)
        except _TooLarge as too_large:
            rest = receive if too_large.more else None
            await self.inner(scope, _replay(too_large.read, rest), send)
            return
        try:
            authorization = headers.get(b"authorization", b"").decode("latin-1")
            principal = await admit("POST", path, authorization, self.state)
            assert principal is not None  # the matrix names API keys as these routes' credential
            data = self._decode(path, raw)
            if data is None:
                # Not strictly the request type: the full stack names the problem (and admits the key
                # again, from the cache), as for every route.
                await self.inner(scope, _replay(raw, None), send)
                return
            deciding = CheckService(self.state.engine)
            if path == CHECK_PATH:
                answer: Any = await decide_check(principal, data, deciding)
            else:
                answer = await decide_batch(principal, data, deciding)
        except DomainError as exc:
            await self._problem(exc, scope, send)
            return
        except Exception as exc:
            await self._internal_error(exc, scope, send)
            return
        await _send(send, 200, _JSON, self._encoder.encode(answer))

    def _decode(self, path: str, raw: bytes) -> Any:
        """The body as the route's request type, or None when the full stack must judge it: anything the
        central body check could refuse (a NUL, nesting past the limit) or that is not strictly the type."""
        if b"\\u0000" in raw or _DEPTH[path] > self.max_depth:
            return None
        if path == BATCH_PATH:
            return decode_batch(raw)
        try:
            return self._decoders[path].decode(raw)
        except msgspec.DecodeError:  # also ValidationError
            return None

    # -- forward auth -------------------------------------------------------------------------------

    async def _forward(self, headers: dict[bytes, bytes], scope: Any, send: Any) -> None:
        try:
            answer = await forward_decision(_LatinHeaders(headers), scope, self.state)
        except Exception as exc:
            await self._internal_error(exc, scope, send)
            return
        if answer.denial is None and answer.raw:
            await _send_empty(send, answer.status, answer.raw)
            return
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.items()]
        if answer.denial is None:
            await _send(send, answer.status, extra + _TEXT, b"")
        else:
            await _send(send, answer.status, extra + _PROBLEM, self._encoder.encode(answer.denial))

    # -- errors -------------------------------------------------------------------------------------

    async def _problem(self, exc: DomainError, scope: Any, send: Any) -> None:
        body, headers = domain_problem(exc, scope["path"])
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await _send(send, exc.status, extra + _PROBLEM, encode_json(body))

    async def _internal_error(self, exc: Exception, scope: Any, send: Any) -> None:
        log.exception("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
        await _send(send, 500, _PROBLEM, encode_json(problem_body(500, **internal_problem(scope["path"]))))


class _LatinHeaders:
    """`HeaderLookup` over `_first_values`: decodes only the few headers forward auth asks for."""

    __slots__ = ("_raw",)

    def __init__(self, raw: dict[bytes, bytes]) -> None:
        self._raw = raw

    def get(self, name: str, /) -> str | None:
        value = self._raw.get(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")


def _first_values(scope: Any) -> dict[bytes, bytes]:
    """Header name → its first value, as Litestar's `Headers.get` reads them."""
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        name = name.lower()
        if name not in headers:
            headers[name] = value
    return headers


async def _read_body(receive: Any, limit: int) -> bytes:
    message = await receive()
    body: bytes = message.get("body", b"")
    more = bool(message.get("more_body", False))
    if not more and len(body) <= limit:
        return body  # the usual case: one message
    chunks, size = [body], len(body)
    while more and size <= limit:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = bool(message.get("more_body", False))
    if size > limit:
        raise _TooLarge(b"".join(chunks), more)
    return b"".join(chunks)


def _replay(read: bytes, receive: Any | None) -> Callable[[], Awaitable[dict[str, Any]]]:
    """A `receive` that first hands on the body already read, then (if more is coming) the rest."""
    delivered = False

    async def replay() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": read, "more_body": receive is not None}
        if receive is None:
            return {"type": "http.disconnect"}
        message: dict[str, Any] = await receive()
        return message

    return replay


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_empty(send: Any, status: int, headers: tuple[tuple[bytes, bytes], ...]) -> None:
    """`_send` of an empty text/plain body with headers already encoded (an admitted forward request)."""
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *_TEXT_EMPTY]})
    await send({"type": "http.response.body", "body": b""})


async def _unobserved(app: ASGIApp, scope: Any, receive: Any, send: Any, _template: str) -> None:
    await app(scope, receive, send)


def install(app: Litestar, observe: Observe | None = None) -> Litestar:
    """Put the lean routes in front of `app`'s handler (after construction: the app's own stack stays
    whole behind them). `observe` wraps each request they answer (see `Observe`)."""
    app.asgi_handler = LeanDecisions(app, app.asgi_handler, observe)
    return app
