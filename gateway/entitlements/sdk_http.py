"""What the client SDK's local decision mode reads: a tenant's decision bundle and the change feed.

- `GET /v1/entitlements/{customer}/decisions`: everything the index decides the tenant's (user,
  resource, action) requests from (`DecisionIndex.export`), with an ETag. The SDK evaluates it with the
  index's own algorithm; `tests/clients/` proves the answers equal `/v1/check`'s.
- `GET /v1/changes`: Server-Sent Events of the replica's change feed (`feed.py`): `change` events name
  the tenants to reload (a policy change: all), `heartbeat`s carry the index version and staleness, a
  `reset` says "reload everything". Resumable with `Last-Event-ID` (an outbox position, valid on every
  replica). A connection ends after `changes_stream_max_seconds`; clients reconnect with their last id.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from gateway.entitlements.bundle import DecisionBundle, decision_bundle
from gateway.entitlements.engine import Engine
from gateway.entitlements.feed import Change, ChangeFeed
from gateway.kernel.auth import Principal
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.web.problems import ERROR_RESPONSES


def _scope(principal: Principal, customer: str) -> None:
    if principal.tenant_id is not None and principal.tenant_id != customer:
        raise NotFound(f"no customer {customer!r}", code="customer_not_found")


class DecisionBundleController(Controller):
    path = "/entitlements"
    tags = ["decisions"]

    @get(
        "/{customer:str}/decisions",
        opt={"scope": "entitlements:read"},
        responses=ERROR_RESPONSES,
        summary="The tenant's decision bundle, for SDKs that decide in-process (ETag / If-None-Match)",
        description=(
            "Everything `/v1/check` decides this tenant's (user, resource, action) requests from: members "
            "and their roles, the roles the plan allows, the permission lines of those roles, the feature "
            "gates the plan leaves closed. Follow `GET /v1/changes` to know when to fetch it again. A "
            "customer that never subscribed is a 404 (`/v1/check` answers `unknown_tenant`)."
        ),
    )
    async def decisions(
        self,
        customer: FromPath[str],
        request: Request[Any, Any, Any],
        state: State,
        principal: NamedDependency[Principal],
    ) -> Response[DecisionBundle]:
        _scope(principal, customer)
        engine: Engine = state.engine
        view = engine.view()
        rules = view.index.export(customer)
        if rules is None:
            raise NotFound(f"customer {customer!r} has never subscribed", code="customer_not_found")
        entitlements = view.tenant(customer)
        body = decision_bundle(
            rules,
            plan_key=entitlements.plan_key if entitlements else None,
            inactive_since=entitlements.inactive_since if entitlements else None,
            version=view.version,
        )
        content = msgspec.json.encode(msgspec.structs.replace(body, index_version=0))
        etag = '"' + hashlib.sha256(content).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(content=b"", status_code=304, headers=headers)  # type: ignore[arg-type]
        return Response(body, headers=headers)


def _change_message(change: Change, tenant_id: str | None) -> ServerSentEventMessage:
    tenants = sorted(change.tenants) if tenant_id is None else sorted(change.tenants & {tenant_id})
    data = {"position": change.position, "tenants": tenants, "policy": change.policy}
    return ServerSentEventMessage(data=json.dumps(data), event="change", id=change.position)


async def _stream(
    engine: Engine, feed: ChangeFeed, tenant_id: str | None, resume_from: int | None, settings: Any
) -> AsyncIterator[ServerSentEventMessage]:
    heartbeat = float(settings.changes_heartbeat_seconds)
    deadline = time.monotonic() + float(settings.changes_stream_max_seconds)
    cursor = feed.seq
    first: list[Change] | None = [] if resume_from is None else feed.resume(resume_from)
    hello = {"position": feed.position, "index_version": engine.version, "resumed": first is not None}
    yield ServerSentEventMessage(data=json.dumps(hello), event="hello", id=feed.position, retry=1000)
    if first is None:
        # Too far behind (or this replica rebuilt since): the client reloads everything it holds.
        yield ServerSentEventMessage(
            data=json.dumps({"position": feed.position}), event="reset", id=feed.position
        )
    else:
        for change in first:
            if change.concerns(tenant_id):
                yield _change_message(change, tenant_id)
    while time.monotonic() < deadline and not feed.closed:
        await feed.wait(heartbeat)
        if feed.closed:  # shutting down: end now, the client resumes with Last-Event-ID
            return
        pending = feed.after(cursor)
        cursor = feed.seq
        if pending is None:
            yield ServerSentEventMessage(
                data=json.dumps({"position": feed.position}), event="reset", id=feed.position
            )
            continue
        for change in pending:
            if change.concerns(tenant_id):
                yield _change_message(change, tenant_id)
        beat = {"position": feed.position, "index_version": engine.version, "stale": engine.stale}
        yield ServerSentEventMessage(data=json.dumps(beat), event="heartbeat")


@get(
    "/changes",
    media_type="text/event-stream",
    opt={"scope": "entitlements:read"},
    tags=["decisions"],
    responses=ERROR_RESPONSES,
    summary="Server-Sent Events of the decision changes this replica applies (resumable: Last-Event-ID)",
    description=(
        "`hello` first (the replica's position), then `change` events `{position, tenants, policy}` as "
        "the index applies them (a tenant key hears of its own tenant and of policy changes only), a "
        "`heartbeat` at least every `changes_heartbeat_seconds` with `index_version` and `stale`, and "
        "`reset` when the client must reload every bundle it holds. Event ids are outbox positions: "
        "reconnect to any replica with `Last-Event-ID` (or `last_event_id`) to resume. The stream ends "
        "after `changes_stream_max_seconds`; reconnect."
    ),
)
async def changes(
    request: Request[Any, Any, Any],
    state: State,
    principal: NamedDependency[Principal],
    last_event_id: Annotated[
        str | None, Parameter(max_length=20, description="As the Last-Event-ID header")
    ] = None,
) -> ServerSentEvent:
    engine: Engine = state.engine
    raw = request.headers.get("last-event-id") or last_event_id
    resume_from: int | None = None
    if raw:
        if not raw.isdecimal():
            raise ValidationFailed("Last-Event-ID must be an event id of this stream", field="last_event_id")
        resume_from = int(raw)
    stream = _stream(engine, engine.feed, principal.tenant_id, resume_from, state.settings)
    return ServerSentEvent(stream, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


CONTROLLERS = [DecisionBundleController, changes]
