"""Issue 9 #5: secrets at rest. Signing keys, webhook secrets and SSO client secrets are sealed with AES-GCM
(key ids, rotation); a shown-once secret is never stored for an idempotent replay; rows written in clear
before encryption are sealed at the next start. Every check reads the database with raw SQL."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from gateway.app import create_app
from gateway.config import Settings
from gateway.db.session import Database
from gateway.identity.http import forget_cached_keys
from gateway.kernel.clock import FrozenClock
from gateway.notifications.models import WebhookEndpoint
from gateway.security import outbound
from gateway.security.secretbox import (
    SecretBox,
    SecretKeyInvalid,
    SecretKeyMissing,
    SecretUnreadable,
    key_id_of,
    load_box,
)
from gateway.sso.models import SsoConnection, SsoDomain
from tests.conftest import ADMIN_KEY, Api
from tests.scim.helpers import synced

KEY_1 = base64.b64encode(hashlib.sha256(b"key one").digest()).decode()
KEY_2 = base64.b64encode(hashlib.sha256(b"key two").digest()).decode()
PUBLIC_ADDRESS = "93.184.215.14"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Webhook hosts in these tests resolve to a public address (no real DNS in tests)."""

    async def resolve(host: str, port: int) -> list[str]:
        return [PUBLIC_ADDRESS]

    monkeypatch.setattr(outbound, "resolve", resolve)


async def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.engine.connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


@asynccontextmanager
async def started(db: Database, clock: FrozenClock, secret_key: str) -> AsyncIterator[Api]:
    """Another app (a restart, a replica) on the same database, with this TIERGATE_SECRET_KEY."""
    settings = Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        relay_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        secret_key=secret_key,
    )
    forget_cached_keys()  # the bootstrap key's id is this database's
    async with AsyncTestClient(create_app(settings, clock=clock, db=db)) as client:
        yield Api(client, ADMIN_KEY)
    forget_cached_keys()


async def platform_sso_connection(api: Api, secret: str) -> dict[str, Any]:
    body = {
        "name": "Vendor IdP",
        "issuer": "https://idp.vendor.example",
        "client_id": "tiergate",
        "client_secret": secret,
        "allowed_domains": ["vendor.example"],
    }
    return dict(await api.post("/v1/sso/connections", body))


# -- the database holds no plaintext ---------------------------------------------------------------------
async def test_stored_secrets_are_sealed_and_the_api_still_uses_them(api: Api, db: Database) -> None:
    endpoint = await api.post(
        "/v1/webhook_endpoints", {"url": "https://hooks.example.com/in", "enabled_events": ["*"]}
    )
    await platform_sso_connection(api, "idp-client-secret-42")

    [(stored_webhook,)] = await rows(db, "SELECT secret FROM webhook_endpoints")
    assert endpoint["secret"].startswith("whsec_") and endpoint["secret"] not in stored_webhook
    assert stored_webhook.startswith("tgs1.test.")
    [(stored_client,)] = await rows(db, "SELECT client_secret FROM sso_connections")
    assert "idp-client-secret-42" not in stored_client and stored_client.startswith("tgs1.test.")
    [(private_jwk,)] = await rows(db, "SELECT private_jwk FROM signing_keys")
    stored_key = private_jwk if isinstance(private_jwk, dict) else json.loads(private_jwk)
    assert list(stored_key) == ["sealed"] and stored_key["sealed"].startswith("tgs1.test.")

    # The owner still reads the secret, and tokens are still signed with the sealed key.
    assert (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}"))["secret"] == endpoint["secret"]
    jwks = (await api.client.get("/.well-known/jwks.json")).json()
    assert [set(k) & {"d"} for k in jwks["keys"]] == [set()]


# -- idempotent replays never carry (or store) a shown-once secret ----------------------------------------
async def _api_key(api: Api, demo: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/api_keys", {"name": "ci", "scopes": ["customers:read"]}


async def _webhook(api: Api, demo: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/webhook_endpoints", {"url": "https://hooks.example.com/x", "enabled_events": ["*"]}


async def _scim_token(api: Api, demo: Any) -> tuple[str, dict[str, Any]]:
    customer = await api.post("/v1/customers", {"name": "Acme", "currency": "USD"})
    await api.post(
        "/v1/subscriptions", {"customer": customer["id"], "price": "enterprise_monthly", "trial_days": 0}
    )
    await synced(api)
    return f"/v1/customers/{customer['id']}/scim_tokens", {"name": "okta"}


@pytest.mark.parametrize(
    ("make", "kind"), [(_api_key, "api_key"), (_webhook, "webhook_endpoint"), (_scim_token, "scim_token")]
)
async def test_a_replay_returns_the_object_without_its_secret(
    api: Api, db: Database, demo: Any, make: Any, kind: str
) -> None:
    path, body = await make(api, demo)
    headers = {"Idempotency-Key": f"create-{kind}"}
    first = await api.client.post(path, json=body, headers={**api._headers(headers)})
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["object"] == kind and len(created["secret"]) > 20
    assert "secret_redacted" not in created

    replay = await api.client.post(path, json=body, headers={**api._headers(headers)})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    replayed = replay.json()
    assert (replayed["id"], replayed["secret"], replayed["secret_redacted"]) == (created["id"], None, True)
    assert int(replay.headers["content-length"]) == len(replay.content)

    stored = await rows(
        db, "SELECT response_body FROM idempotency_keys WHERE key = :k", k=headers["Idempotency-Key"]
    )
    [(stored_body,)] = stored
    assert created["secret"].encode() not in bytes(stored_body)


# -- the box itself ----------------------------------------------------------------------------------------
def test_round_trip_binding_and_tampering() -> None:
    box = SecretBox.from_spec(f"k1:{KEY_1}")
    sealed = box.seal("whsec_abc", context="webhook_endpoints.secret:we_1")
    assert sealed.startswith("tgs1.k1.") and "whsec_abc" not in sealed
    assert box.open(sealed, context="webhook_endpoints.secret:we_1") == "whsec_abc"
    assert box.seal("whsec_abc", context="c") != box.seal("whsec_abc", context="c")  # fresh nonce
    with pytest.raises(SecretUnreadable):  # copied into another row
        box.open(sealed, context="webhook_endpoints.secret:we_2")
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretUnreadable):
        box.open(tampered, context="webhook_endpoints.secret:we_1")
    with pytest.raises(SecretUnreadable):  # a key id nobody configured
        SecretBox.from_spec(f"k9:{KEY_2}").open(sealed, context="webhook_endpoints.secret:we_1")


def test_rotation_old_ids_open_new_writes_use_the_first_key() -> None:
    old = SecretBox.from_spec(f"k1:{KEY_1}")
    sealed_before = old.seal("s3cret", context="c")
    rotated = SecretBox.from_spec(f"k2:{KEY_2},k1:{KEY_1}")
    assert rotated.open(sealed_before, context="c") == "s3cret"
    sealed_after = rotated.seal("s3cret", context="c")
    assert (key_id_of(sealed_before), key_id_of(sealed_after)) == ("k1", "k2")
    assert rotated.needs_reseal(sealed_before) and not rotated.needs_reseal(sealed_after)
    with pytest.raises(SecretUnreadable):  # k1 dropped too early
        SecretBox.from_spec(f"k2:{KEY_2}").open(sealed_before, context="c")


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "k1:not-base64!",
        f"k1:{base64.b64encode(b'short').decode()}",
        f"k 1:{KEY_1}",
        f"k1:{KEY_1},k1:{KEY_2}",
    ],
)
def test_a_bad_key_setting_is_refused(spec: str) -> None:
    with pytest.raises(SecretKeyInvalid):
        SecretBox.from_spec(spec)


def test_embedded_default_keeps_a_local_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "var" / "secret.key"
    first = load_box(key_spec="", key_file=str(key_file), embedded=True)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    sealed = first.seal("kept", context="c")
    again = load_box(key_spec="", key_file=str(key_file), embedded=True)  # the next start
    assert again.open(sealed, context="c") == "kept"


def test_a_shared_database_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://tiergate@127.0.0.1:1/tiergate",
        secret_key="",
        secret_key_file=str(tmp_path / "absent.key"),
    )
    with pytest.raises(SecretKeyMissing, match="TIERGATE_SECRET_KEY is not set"):
        create_app(settings)
    assert not (tmp_path / "absent.key").exists()
    # Not even with a key file left by an embedded run: replicas must share one configured key.
    load_box(key_spec="", key_file=str(tmp_path / "absent.key"), embedded=True)
    with pytest.raises(SecretKeyMissing):
        create_app(settings)


# -- rotation and legacy rows, through restarts --------------------------------------------------------------
async def test_a_restart_with_a_new_key_reseals_and_keeps_working(db: Database, clock: FrozenClock) -> None:
    async with started(db, clock, f"k1:{KEY_1}") as api:
        endpoint = await api.post(
            "/v1/webhook_endpoints", {"url": "https://hooks.example.com/r", "enabled_events": ["*"]}
        )
        connection = await platform_sso_connection(api, "rotating-client-secret")
    [(before,)] = await rows(db, "SELECT secret FROM webhook_endpoints")
    assert key_id_of(before) == "k1"

    async with started(db, clock, f"k2:{KEY_2},k1:{KEY_1}") as api:
        assert (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}"))["secret"] == endpoint["secret"]
        newer = await api.post(
            "/v1/webhook_endpoints", {"url": "https://hooks.example.com/n", "enabled_events": ["*"]}
        )
    stored = await rows(db, "SELECT secret FROM webhook_endpoints")
    assert [key_id_of(s) for (s,) in stored] == ["k2", "k2"]
    [(client_secret,)] = await rows(db, "SELECT client_secret FROM sso_connections")
    [(private_jwk,)] = await rows(db, "SELECT private_jwk FROM signing_keys")
    sealed_key = (private_jwk if isinstance(private_jwk, dict) else json.loads(private_jwk))["sealed"]
    assert (key_id_of(client_secret), key_id_of(sealed_key)) == ("k2", "k2")

    # The old key can go now: everything opens with k2 alone.
    async with started(db, clock, f"k2:{KEY_2}") as api:
        assert (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}"))["secret"] == endpoint["secret"]
        assert (await api.get(f"/v1/webhook_endpoints/{newer['id']}"))["secret"] == newer["secret"]
        assert (await api.get(f"/v1/sso/connections/{connection['id']}"))["client_secret_set"] is True


async def test_rows_written_in_clear_are_sealed_at_the_next_start(db: Database, clock: FrozenClock) -> None:
    async with started(db, clock, f"k1:{KEY_1}"):
        pass  # schema, bootstrap key and a signing key
    legacy_jwk = {"kty": "EC", "crv": "P-256", "kid": "kid_legacy", "alg": "ES256", "use": "sig"}
    from joserfc.jwk import ECKey

    generated = ECKey.generate_key("P-256", parameters=legacy_jwk, private=True)
    now = clock.now()
    async with db.unit_of_work() as session:
        await session.execute(text("UPDATE signing_keys SET retired_at = :now"), {"now": now})
        session.add(
            WebhookEndpoint(
                id="we_legacy",
                tenant_id=None,
                url="https://hooks.example.com/legacy",
                secret="whsec_legacyLegacyLegacyLegacyLegacy00",
                description=None,
                enabled_events=["*"],
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
        session.add(
            SsoConnection(
                id="ssoc_legacy",
                tenant_id=None,
                name="Legacy IdP",
                issuer="https://legacy.idp.example",
                client_id="tiergate",
                client_secret="legacy-client-secret",
                scopes=["openid"],
                allowed_domains=["legacy.example"],
                enabled=True,
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        session.add(SsoDomain(domain="legacy.example", connection_id="ssoc_legacy", tenant_id=None))
        from gateway.identity.models import SigningKey

        session.add(
            SigningKey(
                kid="kid_legacy",
                algorithm="ES256",
                private_jwk=dict(generated.as_dict(private=True)),
                public_jwk=dict(generated.as_dict(private=False)),
                created_at=now,
                activated_at=now,
            )
        )

    async with started(db, clock, f"k1:{KEY_1}") as api:
        assert (await api.get("/v1/webhook_endpoints/we_legacy"))["secret"] == (
            "whsec_legacyLegacyLegacyLegacyLegacy00"
        )
        jwks = (await api.client.get("/.well-known/jwks.json")).json()
        assert "kid_legacy" in [k["kid"] for k in jwks["keys"]]

    [(webhook,)] = await rows(db, "SELECT secret FROM webhook_endpoints WHERE id = 'we_legacy'")
    [(client,)] = await rows(db, "SELECT client_secret FROM sso_connections WHERE id = 'ssoc_legacy'")
    [(jwk,)] = await rows(db, "SELECT private_jwk FROM signing_keys WHERE kid = 'kid_legacy'")
    jwk = jwk if isinstance(jwk, dict) else json.loads(jwk)
    assert "legacy" not in webhook.lower() and key_id_of(webhook) == "k1"
    assert "legacy" not in client and key_id_of(client) == "k1"
    assert list(jwk) == ["sealed"] and generated.as_dict(private=True)["d"] not in jwk["sealed"]


@pytest.mark.parametrize(
    ("document", "stored"),
    [
        ({"object": "invite", "id": "inv_1", "token": "inv_1.v"}, {"token": None, "token_redacted": True}),
        (
            {"object": "access_token", "access_token": "eyJ.x.y", "user": "usr_1"},
            {"access_token": None, "access_token_redacted": True},
        ),
        ({"object": "api_key", "id": "key_1", "secret": None}, {"secret": None}),  # listed later: no secret
        ({"object": "customer", "id": "cus_1", "secret": "not-a-credential"}, {"secret": "not-a-credential"}),
    ],
)
def test_which_fields_are_redacted_before_storing(document: dict[str, Any], stored: dict[str, Any]) -> None:
    from gateway.web.idempotency import redact_shown_once

    assert json.loads(redact_shown_once(json.dumps(document).encode())) == {**document, **stored}
    assert redact_shown_once(b"not json") == b"not json"
