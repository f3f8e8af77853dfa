"""The configured bootstrap key cannot be revoked through the API (start-up asserts that it exists), so a
run that holds it, such as the OpenAPI fuzzing, cannot lock itself out; any other key can be revoked."""

from __future__ import annotations

from tests.conftest import ADMIN_KEY, Api


async def test_the_bootstrap_key_is_not_revocable_but_other_keys_are(api: Api) -> None:
    keys = (await api.get("/v1/api_keys"))["data"]
    bootstrap = next(k for k in keys if k["name"] == "bootstrap")
    problem = await api.post(f"/v1/api_keys/{bootstrap['id']}/revoke", expect=409)
    assert problem["code"] == "api_key_not_revocable"
    assert problem["detail"] == (
        "this is the bootstrap key configured by TIERGATE_BOOTSTRAP_API_KEY: remove it from the "
        "environment and restart, then revoke it"
    )
    # Still valid, and still not revoked.
    listed = {k["id"]: k for k in (await api.get("/v1/api_keys"))["data"]}
    assert listed[bootstrap["id"]]["revoked_at"] is None
    assert api.key == ADMIN_KEY

    other = await api.post("/v1/api_keys", {"name": "short-lived", "scopes": ["catalog:read"]})
    revoked = await api.post(f"/v1/api_keys/{other['id']}/revoke", expect=201)
    assert revoked["revoked_at"] is not None
    await api.as_key(other["secret"]).get("/v1/plans", expect=401)
