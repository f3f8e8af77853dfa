"""Local decision mode: answer `allowed(user, customer, resource, action)` in-process, in microseconds.

How it stays right:
- A tenant's rules come from `GET /v1/entitlements/{customer}/decisions` (with ETag), fetched on first use.
- A background task follows `GET /v1/changes` (Server-Sent Events). A `change` naming a tenant (or a
  policy change, naming all) marks its rules dirty and reloads them; a decision for a dirty tenant waits
  for the reload, so once the event has arrived no answer comes from the old rules. `reset` marks every
  tenant dirty. On a broken connection it reconnects with `Last-Event-ID` (an outbox position any replica
  understands).
- **Staleness bound**: the stream sends a heartbeat every few seconds. If nothing was heard for
  `max_staleness_seconds` (or the server says its own index is stale), answers are `index_stale`: denied,
  as the server denies, unless `fail_open=True` was chosen, which allows and still says `index_stale`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from ._transport import Transport
from .decide import Decision, TenantRules, unknown_tenant
from .errors import ApiError

log = logging.getLogger("tiergate_client.local")


class _Unknown:
    """A customer that never subscribed (404): `/v1/check` answers unknown_tenant."""

    def __init__(self, customer: str, index_version: int) -> None:
        self.customer = customer
        self.index_version = index_version


class LocalDecider:
    def __init__(
        self,
        transport: Transport,
        *,
        max_staleness_seconds: float = 30.0,
        fail_open: bool = False,
        reconnect_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._transport = transport
        self.max_staleness_seconds = max_staleness_seconds
        self.fail_open = fail_open
        self.reconnect_seconds = reconnect_seconds
        self._monotonic = monotonic
        self._rules: dict[str, TenantRules | _Unknown] = {}
        self._etags: dict[str, str] = {}
        self._dirty: set[str] = set()
        self._loading: dict[str, asyncio.Task[TenantRules | _Unknown]] = {}
        self._heard = float("-inf")
        self._server_stale = False
        self.position: int | None = None  # the last event id (outbox position) heard
        self._connected = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None
        self.reloads = 0  # bundles fetched (tests and metrics)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, *, wait_seconds: float = 10.0) -> None:
        """Start following the change stream; returns once it is connected (its `hello` arrived)."""
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow())
        await asyncio.wait_for(self._connected.wait(), wait_seconds)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None

    async def __aenter__(self) -> LocalDecider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def stale(self) -> bool:
        return self._server_stale or self._monotonic() - self._heard > self.max_staleness_seconds

    # -- deciding ----------------------------------------------------------------------------------
    async def allowed(self, user: str, customer: str, resource: str, action: str) -> Decision:
        """The decision `/v1/check` gives for the same request (from this client's view of the index)."""
        rules = self._rules.get(customer)
        if rules is None or customer in self._dirty or customer in self._loading:
            rules = await self._load(customer)
        return self._decide(rules, user, resource, action)

    def allowed_cached(self, user: str, customer: str, resource: str, action: str) -> Decision | None:
        """Synchronous: the decision if the tenant's rules are loaded and current, else None (then call
        `allowed`). For hot paths that must not await."""
        rules = self._rules.get(customer)
        if rules is None or customer in self._dirty or customer in self._loading:
            return None
        return self._decide(rules, user, resource, action)

    def _decide(self, rules: TenantRules | _Unknown, user: str, resource: str, action: str) -> Decision:
        if self.stale:
            plan = rules.plan if isinstance(rules, TenantRules) else None
            return Decision(
                self.fail_open, "index_stale", rules.customer, rules.index_version, user, plan, stale=True
            )
        if isinstance(rules, _Unknown):
            return unknown_tenant(rules.customer, user, rules.index_version)
        return rules.decide(user, resource, action)

    async def _load(self, customer: str) -> TenantRules | _Unknown:
        """The tenant's current rules: joins a reload in flight, and reloads again if a change arrived
        while it was in flight (a few times at most: then the newest rules fetched are answered)."""
        for _ in range(3):
            task = self._loading.get(customer) or self._spawn(customer)
            rules = await asyncio.shield(task)
            if customer not in self._dirty:
                return rules
        return rules

    def _spawn(self, customer: str) -> asyncio.Task[TenantRules | _Unknown]:
        task = self._loading[customer] = asyncio.create_task(self._fetch(customer))

        def forget(done: asyncio.Task[TenantRules | _Unknown]) -> None:
            if self._loading.get(customer) is done:
                del self._loading[customer]
            if not done.cancelled() and done.exception() is not None:
                self._dirty.add(customer)  # the next decision tries again

        task.add_done_callback(forget)
        return task

    async def _fetch(self, customer: str) -> TenantRules | _Unknown:
        # Cleared before the request: a change arriving while it is in flight marks the tenant again.
        self._dirty.discard(customer)
        headers = {}
        etag = self._etags.get(customer)
        if etag and isinstance(self._rules.get(customer), TenantRules):
            headers["If-None-Match"] = etag
        try:
            response = await self._transport.request(
                "GET", f"/v1/entitlements/{customer}/decisions", headers=headers
            )
        except ApiError as exc:
            if exc.status == 404 and exc.code == "customer_not_found":
                rules: TenantRules | _Unknown = _Unknown(customer, self.position or 0)
                self._rules[customer] = rules
                return rules
            raise
        self.reloads += 1
        if response.status_code == 304:
            return self._rules[customer]
        self._etags[customer] = response.headers.get("ETag", "")
        rules = TenantRules(response.json())
        self._rules[customer] = rules
        return rules

    # -- following the change stream ---------------------------------------------------------------
    async def _follow(self) -> None:
        while True:
            try:
                await self._stream_once()
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, ApiError, ValueError) as exc:
                log.warning("change stream interrupted (%r); reconnecting", exc)
            await asyncio.sleep(self.reconnect_seconds)

    async def _stream_once(self) -> None:
        headers = self._transport.headers({"Accept": "text/event-stream"})
        if self.position is not None:
            headers["Last-Event-ID"] = str(self.position)
        url = self._transport.base_url + "/v1/changes"
        async with self._transport.http.stream("GET", url, headers=headers, timeout=None) as response:
            if response.status_code >= 400:
                await response.aread()
                raise ApiError(response.status_code, response.json())
            event, event_id = "message", None
            data: list[str] = []
            async for line in response.aiter_lines():
                if line == "":
                    if data or event != "message":
                        self._on_event(event, "\n".join(data), event_id)
                    event, data, event_id = "message", [], None
                elif line.startswith(":"):
                    continue
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
                    elif name == "id":
                        event_id = value

    def _on_event(self, event: str, raw: str, event_id: str | None) -> None:
        self._heard = self._monotonic()
        payload: dict[str, Any] = json.loads(raw) if raw else {}
        if event == "hello":
            self._connected.set()
            if self.position is None:
                self.position = payload.get("position")
            return
        if event == "heartbeat":
            self._server_stale = bool(payload.get("stale"))
            return
        if event == "reset":
            self._dirty.update(self._rules)
        elif event == "change":
            if payload.get("policy"):
                self._dirty.update(self._rules)
            else:
                self._dirty.update(t for t in payload.get("tenants", ()) if t in self._rules)
        if event_id is not None and event_id.isdecimal():
            self.position = max(self.position or 0, int(event_id))
        for customer in list(self._dirty):
            if customer not in self._loading:
                self._spawn(customer)  # reload now rather than on the next decision
