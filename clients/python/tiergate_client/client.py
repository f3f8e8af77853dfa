"""The API client: one object per API key, a namespace per resource, every call async.

    async with Tiergate("https://tiergate.internal", api_key) as tg:
        customer = await tg.customers.create(name="Acme", currency="EUR")
        await tg.subscriptions.create(customer=customer["id"], price="pro-monthly-eur")
        ok = await tg.checks.check(customer=customer["id"], user="u1", resource="projects", action="create")
        async with tg.local() as local:                      # decide in-process from here on
            (await local.allowed("u1", customer["id"], "projects", "create")).allowed

Answers are the API's JSON objects (dicts), exactly as documented in the OpenAPI reference; errors raise
`ApiError` with Tiergate's `code`. POSTs carry an Idempotency-Key (pass your own to make a call safe to
repeat across processes).
"""

from __future__ import annotations

from typing import Any

import httpx

from ._transport import Transport
from .local import LocalDecider

Json = dict[str, Any]


def _body(**fields: Any) -> Json:
    return {k: v for k, v in fields.items() if v is not None}


class _Resource:
    def __init__(self, transport: Transport) -> None:
        self._t = transport


class Customers(_Resource):
    async def create(self, *, name: str, idempotency_key: str | None = None, **fields: Any) -> Json:
        result: Json = await self._t.json(
            "POST", "/v1/customers", json=_body(name=name, **fields), idempotency_key=idempotency_key
        )
        return result

    async def get(self, customer_id: str) -> Json:
        result: Json = await self._t.json("GET", f"/v1/customers/{customer_id}")
        return result

    async def update(self, customer_id: str, **fields: Any) -> Json:
        result: Json = await self._t.json("PATCH", f"/v1/customers/{customer_id}", json=fields)
        return result

    async def list(self, *, limit: int | None = None, starting_after: str | None = None) -> Json:
        params = {"limit": limit, "starting_after": starting_after}
        result: Json = await self._t.json("GET", "/v1/customers", params=params)
        return result

    async def add_member(self, customer_id: str, *, email: str, role: str, **fields: Any) -> Json:
        result: Json = await self._t.json(
            "POST", f"/v1/customers/{customer_id}/members", json=_body(email=email, role=role, **fields)
        )
        return result


class Subscriptions(_Resource):
    async def create(self, *, customer: str, idempotency_key: str | None = None, **fields: Any) -> Json:
        result: Json = await self._t.json(
            "POST",
            "/v1/subscriptions",
            json=_body(customer=customer, **fields),
            idempotency_key=idempotency_key,
        )
        return result

    async def get(self, subscription_id: str) -> Json:
        result: Json = await self._t.json("GET", f"/v1/subscriptions/{subscription_id}")
        return result

    async def list(self, **params: Any) -> Json:
        result: Json = await self._t.json("GET", "/v1/subscriptions", params=params)
        return result

    async def change_plan(self, subscription_id: str, *, if_match: str | None = None, **fields: Any) -> Json:
        headers = {"If-Match": if_match} if if_match else None
        result: Json = await self._t.json(
            "POST", f"/v1/subscriptions/{subscription_id}/plan_change", json=fields, headers=headers
        )
        return result

    async def cancel(self, subscription_id: str, **fields: Any) -> Json:
        result: Json = await self._t.json("POST", f"/v1/subscriptions/{subscription_id}/cancel", json=fields)
        return result


class Checks(_Resource):
    async def check(self, *, customer: str, **fields: Any) -> Json:
        """`/v1/check`: a permission (`user`, `resource`, `action`), a feature (`feature`), or both."""
        result: Json = await self._t.json("POST", "/v1/check", json=_body(customer=customer, **fields))
        return result

    async def batch(self, checks: list[Json]) -> Json:
        result: Json = await self._t.json("POST", "/v1/check/batch", json={"checks": checks})
        return result

    async def entitlements(self, customer: str) -> Json:
        result: Json = await self._t.json("GET", f"/v1/entitlements/{customer}")
        return result


class Tokens(_Resource):
    async def issue(self, *, customer: str, user: str, ttl_seconds: int | None = None) -> Json:
        result: Json = await self._t.json(
            "POST", "/v1/tokens", json=_body(customer=customer, user=user, ttl_seconds=ttl_seconds)
        )
        return result


class UsageEvents(_Resource):
    async def send(
        self, events: list[Json], *, atomic: bool = False, idempotency_key: str | None = None
    ) -> Json:
        """`/v1/usage_events`: a batch of CloudEvents-shaped usage events (deduplicated by source + id, so
        resending a batch after a lost answer never counts twice)."""
        body: Json = {"events": events}
        if atomic:
            body["atomic"] = True
        result: Json = await self._t.json(
            "POST", "/v1/usage_events", json=body, idempotency_key=idempotency_key
        )
        return result

    async def usage(self, **params: Any) -> Json:
        result: Json = await self._t.json("GET", "/v1/usage", params=params)
        return result


class Tiergate:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.transport = Transport(base_url, api_key, timeout=timeout, max_retries=max_retries, client=http)
        self.customers = Customers(self.transport)
        self.subscriptions = Subscriptions(self.transport)
        self.checks = Checks(self.transport)
        self.tokens = Tokens(self.transport)
        self.usage_events = UsageEvents(self.transport)

    def local(self, *, max_staleness_seconds: float = 30.0, fail_open: bool = False) -> LocalDecider:
        """A decider that answers permission checks in-process (see `local.py`); use `async with`."""
        return LocalDecider(self.transport, max_staleness_seconds=max_staleness_seconds, fail_open=fail_open)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> Tiergate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
