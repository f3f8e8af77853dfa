"""`Idempotency-Key` on every POST (ARCHITECTURE.md §3), as ASGI middleware around the whole app.

The first response for (caller, key) is stored and replayed for a retry with the same request; the same
key with a different request is a 409, and so is a retry while the first is still running. A 5xx is not
stored, so the client may retry it. The stored response is written in its own transaction right after
the request's transaction committed: a crash between the two loses only the replay, never doubles work
that has its own unique constraints.

Shown-once secrets never reach the table: before a response is stored, the credential fields of the
objects in `SHOWN_ONCE` are replaced by null and flagged `<field>_redacted: true`. The first response
carries the secret; a replay carries the object without it (the credential exists; whoever lost the
first response revokes it and creates another).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from gateway.db.idempotency import IdempotencyKey
from gateway.kernel.errors import Conflict, DomainError, IdempotencyConflict, ValidationFailed

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
# Response objects (by their `object`) whose fields are credentials shown once: never stored for replay.
# A new endpoint that hands out a secret adds its object here.
SHOWN_ONCE: dict[str, tuple[str, ...]] = {
    "api_key": ("secret",),
    "scim_token": ("secret",),
    "webhook_endpoint": ("secret",),
    "invite": ("token",),
    "access_token": ("access_token",),
}


def redact_shown_once(body: bytes) -> bytes:
    """The response body as it may be stored: credential fields of `SHOWN_ONCE` objects nulled and
    flagged. Anything that is not such a JSON object is returned unchanged."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body
    if not isinstance(document, dict):
        return body
    fields = SHOWN_ONCE.get(str(document.get("object")), ())
    present = [f for f in fields if document.get(f) is not None]
    if not present:
        return body
    for field in present:
        document[field] = None
        document[f"{field}_redacted"] = True
    return json.dumps(document, separators=(",", ":")).encode()


# Forward auth answers proxies (Envoy forwards the original POST): a decision is never replayed.
NOT_REPLAYED_PREFIX = "/v1/authz/"


def replays(method: str, path: str) -> bool:
    """Whether a request to `path` is stored and replayed by its Idempotency-Key (the OpenAPI document
    declares the header exactly where this holds)."""
    return method == "POST" and not path.startswith(NOT_REPLAYED_PREFIX)


MAX_BODY = 1_048_576  # when the app has no settings; otherwise `request_max_body_bytes`


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413
    title = "Request body too large"


class KeyInUse(Conflict):
    code = "idempotency_key_in_use"
    title = "A request with this Idempotency-Key is still being processed"


async def _send_problem(send: Any, error: DomainError, path: str) -> None:
    # Encoded as Litestar encodes every other problem (compact msgspec JSON), so a client parsing or
    # comparing problems byte for byte sees one format.
    body = msgspec.json.encode(error.to_problem(instance=path))
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class IdempotencyMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not replays(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            await _send_problem(
                send,
                ValidationFailed(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters"),
                scope["path"],
            )
            return

        settings = scope["app"].state.get("settings")
        limit = getattr(settings, "request_max_body_bytes", MAX_BODY)
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > limit:
                # The same limit and answer as without the header (Litestar's request_max_body_size).
                await _send_problem(
                    send, PayloadTooLarge(f"request body larger than {limit} bytes"), scope["path"]
                )
                return

        state = scope["app"].state
        db, clock = state.db, state.clock
        # The caller is whoever holds the credential; hashing it keeps secrets out of the table.
        caller = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()[:64]
        request_hash = hashlib.sha256(
            b"\n".join(
                [scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body]
            )
        ).hexdigest()
        now = clock.now()
        ttl = timedelta(hours=state.settings.idempotency_ttl_hours)

        try:
            row = await self._claim(db, caller, key, request_hash, now, ttl)
        except IntegrityError:
            # A concurrent request with the same key inserted first.
            await _send_problem(send, KeyInUse("retry after the first request finished"), scope["path"])
            return
        if row is not None:
            if row.request_hash != request_hash:
                await _send_problem(
                    send,
                    IdempotencyConflict("this Idempotency-Key was used with a different request"),
                    scope["path"],
                )
            elif row.completed_at is None:
                await _send_problem(send, KeyInUse("retry after the first request finished"), scope["path"])
            else:
                await self._replay(send, row)
            return

        await self._run_and_store(scope, body, send, caller, key)

    @staticmethod
    async def _claim(
        db: Any, caller: str, key: str, request_hash: str, now: Any, ttl: timedelta
    ) -> IdempotencyKey | None:
        """Return the stored row for this key, or insert an in-progress row and return None."""
        async with db.unit_of_work() as session:
            row: IdempotencyKey | None = (
                await session.scalars(
                    select(IdempotencyKey).where(IdempotencyKey.scope == caller, IdempotencyKey.key == key)
                )
            ).first()
            if row is not None and row.created_at + ttl < now:
                await session.delete(row)
                await session.flush()
                row = None
            if row is None:
                session.add(IdempotencyKey(scope=caller, key=key, request_hash=request_hash, created_at=now))
            return row

    async def _replay(self, send: Any, row: IdempotencyKey) -> None:
        stored_headers = [(bytes.fromhex(k), bytes.fromhex(v)) for k, v in (row.response_headers or [])]
        await send(
            {
                "type": "http.response.start",
                "status": row.status_code,
                "headers": [*stored_headers, (b"idempotent-replayed", b"true")],
            }
        )
        await send({"type": "http.response.body", "body": row.response_body or b""})

    async def _run_and_store(self, scope: Any, body: bytes, send: Any, caller: str, key: str) -> None:
        delivered = False

        async def replay_receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        status = 500
        response_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def capture_send(message: dict[str, Any]) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        state = scope["app"].state
        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            async with state.db.unit_of_work() as session:
                where = (IdempotencyKey.scope == caller, IdempotencyKey.key == key)
                if status >= 500:
                    await session.execute(delete(IdempotencyKey).where(*where))
                else:
                    row = (await session.scalars(select(IdempotencyKey).where(*where))).first()
                    if row is not None:
                        stored = redact_shown_once(b"".join(chunks))
                        row.status_code = status
                        row.response_headers = [
                            [k.hex(), v.hex()] for k, v in response_headers if k.lower() != b"content-length"
                        ] + [[b"content-length".hex(), str(len(stored)).encode().hex()]]
                        row.response_body = stored
                        row.completed_at = state.clock.now()
