"""Builders for SCIM tests: a tenant on a plan with a SCIM token, and a client that speaks SCIM."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Api

SCIM = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


async def synced(api: Api) -> None:
    """Wait until the app's decision engine has read the newest outbox event."""
    latest, cursor = 0, None
    while True:
        page = await api.get(
            "/v1/events", params={"limit": 100, **({"starting_after": cursor} if cursor else {})}
        )
        if page["data"]:
            latest = page["data"][-1]["seq"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    for _ in range(400):
        if (await api.client.get("/health")).json()["index_version"] >= latest:
            return
        await asyncio.sleep(0.025)
    raise AssertionError("engine did not catch up")


async def scim_tenant(api: Api, price: str, name: str = "Acme") -> tuple[str, str]:
    """A customer subscribed to `price`, and a SCIM token for it: (customer id, token secret)."""
    customer = await api.post("/v1/customers", {"name": name, "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": customer["id"], "price": price, "trial_days": 0})
    token = await api.post(f"/v1/customers/{customer['id']}/scim_tokens", {"name": "okta"})
    await synced(api)
    return customer["id"], token["secret"]


class Scim:
    def __init__(self, api: Api, token: str) -> None:
        self.client = api.client
        self.token = token

    async def call(
        self, method: str, path: str, body: Any = None, *, expect: int, raw: bytes | None = None, **kw: Any
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": SCIM, **kw.pop("headers", {})}
        content = raw if raw is not None else (None if body is None else __import__("json").dumps(body))
        response = await self.client.request(
            method, f"/scim/v2{path}", content=content, headers=headers, **kw
        )
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text}"
        if response.status_code != 204:
            assert response.headers["content-type"].startswith(SCIM), response.headers["content-type"]
        return response.json() if response.content else None

    async def create_user(self, email: str, *, expect: int = 201, **attrs: Any) -> Any:
        return await self.call(
            "POST", "/Users", {"schemas": [USER], "userName": email, **attrs}, expect=expect
        )

    async def create_group(self, name: str, members: list[str] = (), expect: int = 201) -> Any:  # type: ignore[assignment]
        body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members]}
        return await self.call("POST", "/Groups", body, expect=expect)

    async def patch(self, path: str, *operations: dict[str, Any], expect: int = 200) -> Any:
        return await self.call(
            "PATCH", path, {"schemas": [PATCH_OP], "Operations": list(operations)}, expect=expect
        )


def assert_scim_error(body: Any, status: int, scim_type: str | None = None) -> None:
    assert body["schemas"] == [ERROR]
    assert body["status"] == str(status)
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
