"""`./scripts/serve-demo --port 8811` (issue 9, rough edges): the SSO redirect URI and the token issuer
said `:8000`. Both now follow the address Tiergate serves on unless `token_issuer` / `sso_public_url` are
configured."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import AsyncTestClient

from gateway import cli
from gateway.app import create_app
from gateway.config import Settings, load_settings
from gateway.db.session import Database
from gateway.demo import seed_catalog
from gateway.kernel.clock import FrozenClock
from tests.conftest import ADMIN_KEY, Api
from tests.entitlements.test_check_api import tenant


@asynccontextmanager
async def api_for(db: Database, clock: FrozenClock, **overrides: Any) -> AsyncIterator[Api]:
    settings = Settings(
        database_url="unused-db-is-injected",
        migrate_on_start=False,
        scheduler_enabled=False,
        bootstrap_api_key=ADMIN_KEY,
        **overrides,
    )
    app = create_app(settings, clock=clock, db=db)
    async with AsyncTestClient(app) as client:
        async with db.unit_of_work() as session:
            await seed_catalog(session, clock)
        yield Api(client, ADMIN_KEY)


async def issuer_and_redirect_uri(api: Api) -> tuple[str, str]:
    customer, _, users = await tenant(api, api.client.app, "enterprise_monthly", owner="owner")
    token = (await api.post("/v1/tokens", {"customer": customer, "user": users["owner"]}))["access_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    connection = await api.post(
        "/v1/sso/connections",
        {
            "name": "Acme Okta",
            "customer": customer,
            "issuer": "https://login.acme-idp.example",
            "client_id": "tiergate",
            "client_secret": "very-secret-value",
            "allowed_domains": ["acme.example"],
        },
    )
    return claims["iss"], connection["redirect_uri"]


async def test_issuer_and_redirect_uri_follow_the_served_port(db: Database, clock: FrozenClock) -> None:
    async with api_for(db, clock, host="0.0.0.0", port=8811) as api:
        assert await issuer_and_redirect_uri(api) == (
            "http://127.0.0.1:8811",
            "http://127.0.0.1:8811/sso/callback",
        )


async def test_configured_issuer_and_public_url_win(db: Database, clock: FrozenClock) -> None:
    async with api_for(
        db,
        clock,
        port=8811,
        token_issuer="https://auth.example.com",
        sso_public_url="https://sso.example.com",
    ) as api:
        assert await issuer_and_redirect_uri(api) == (
            "https://auth.example.com",
            "https://sso.example.com/sso/callback",
        )


def test_served_url_names_a_reachable_address() -> None:
    assert Settings().served_url == "http://127.0.0.1:8000"
    assert Settings(host="::", port=9000).served_url == "http://[::1]:9000"
    assert Settings(host="tiergate.internal", port=80).issuer == "http://tiergate.internal:80"


def test_serve_exports_its_address_for_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """`tiergate serve --port` hands uvicorn the port and exports it, so the app uvicorn's factory builds
    (in every worker) derives its issuer from it."""
    import uvicorn

    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.update(kwargs))
    # Set first so that monkeypatch puts back the original state of what `serve` exports.
    monkeypatch.setenv("TIERGATE_PORT", "8000")
    monkeypatch.setenv("TIERGATE_HOST", "127.0.0.1")
    monkeypatch.delenv("TIERGATE_TOKEN_ISSUER", raising=False)
    result = CliRunner().invoke(
        cli.main, ["serve", "--port", "8811", "--host", "0.0.0.0", "--server", "uvicorn"]
    )
    assert result.exit_code == 0, result.output
    assert (served["host"], served["port"]) == ("0.0.0.0", 8811)
    # One log format: uvicorn's loggers propagate to the root logger instead of printing their own.
    assert served["log_config"] is None
    assert load_settings().issuer == "http://127.0.0.1:8811"


def test_alembic_logs_only_warnings_unless_debugging(db: Database, clock: FrozenClock) -> None:
    """Every start printed alembic's seven plugin set-up lines and its context lines at INFO."""
    alembic = logging.getLogger("alembic")
    try:
        create_app(Settings(database_url="unused", log_level="INFO"), clock=clock, db=db)
        assert alembic.getEffectiveLevel() == logging.WARNING
        create_app(Settings(database_url="unused", log_level="DEBUG"), clock=clock, db=db)
        assert alembic.getEffectiveLevel() == logging.DEBUG
    finally:
        alembic.setLevel(logging.NOTSET)
