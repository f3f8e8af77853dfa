"""ASGI middleware and a decorator: verify the end user's Tiergate token offline, then ask the local
decider (or the API) whether they may do what the route does. Works under any ASGI framework (Litestar,
Starlette, FastAPI): it only reads the `Authorization` header and writes `scope["tiergate.user"]`.

    app = TiergateAuthMiddleware(app, verifier=TokenVerifier(base_url))
    @requires("projects", "create", decider=local)      # on a handler that receives the ASGI scope/request
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from .errors import TokenInvalid
from .local import LocalDecider
from .tokens import EndUser, TokenVerifier

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
USER_KEY = "tiergate.user"


async def _problem(send: Send, status: int, code: str, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "status": status, "code": code, "detail": detail}).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="tiergate"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip()
    return None


class TiergateAuthMiddleware:
    """Verifies `Authorization: Bearer <Tiergate access token>` and puts the `EndUser` in the scope.

    `required=True` answers 401 problem+json to a request without a valid token; `False` lets it through
    without a user (routes decide). Verification is offline (JWKS), a few tens of microseconds."""

    def __init__(self, app: ASGIApp, *, verifier: TokenVerifier, required: bool = True) -> None:
        self.app = app
        self.verifier = verifier
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            if self.required:
                await _problem(send, 401, "token_missing", "a Tiergate access token is required")
                return
        else:
            try:
                scope[USER_KEY] = self.verifier.verify(token)
            except TokenInvalid as exc:
                await _problem(send, 401, "token_invalid", str(exc))
                return
        await self.app(scope, receive, send)


def end_user(scope: Scope) -> EndUser | None:
    user: EndUser | None = scope.get(USER_KEY)
    return user


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Forbidden(Exception):
    """Raised by `requires` when the decision denies; carries the decision's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def requires(
    resource: str, action: str, *, decider: LocalDecider, scope_arg: str = "scope"
) -> Callable[[F], F]:
    """Decorate an async handler that receives the ASGI scope (or a request with `.scope`) as `scope_arg`:
    it runs only when the token's user may do (resource, action) in the token's customer."""

    def wrap(handler: F) -> F:
        @functools.wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            holder = kwargs.get(scope_arg)
            if holder is None:
                holder = next((a for a in args if isinstance(a, dict) or hasattr(a, "scope")), None)
            asgi_scope = holder if isinstance(holder, dict) else getattr(holder, "scope", {})
            user = end_user(asgi_scope)
            if user is None:
                raise Forbidden("token_missing")
            decision = await decider.allowed(user.user, user.customer, resource, action)
            if not decision.allowed:
                raise Forbidden(decision.reason)
            return await handler(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return wrap
