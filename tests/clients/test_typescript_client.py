"""The TypeScript client (`clients/typescript`): its types are generated from this very app's OpenAPI
document with openapi-typescript, it compiles with tsc (strict), and a Node script drives a live Tiergate
with it (customer, subscription, check, a 404 problem, the entitlements snapshot)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Settings
from tests.conftest import ADMIN_KEY, IN_CI, Api
from tests.provisioning.helpers import manual_settings
from tests.served import replica

__all__ = ["replica"]
Replica = Callable[..., AbstractAsyncContextManager[Api]]
PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "typescript"


@pytest.fixture
def settings() -> Settings:
    return manual_settings()


async def run(*argv: str, env: dict[str, str] | None = None) -> str:
    # A subprocess the event loop awaits: the served app runs on this same loop and must keep answering.
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=PACKAGE,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 240)
    text = out.decode()
    assert process.returncode == 0, f"{' '.join(argv)} failed:\n{text}"
    return text


@pytest.fixture
def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        if IN_CI:
            pytest.fail("npm is needed for the TypeScript client test")
        pytest.skip("npm is not installed")
    return found


async def test_the_generated_typescript_client_talks_to_a_live_server(replica: Replica, npm: str) -> None:
    async with replica() as api:
        app: Any = api.app  # type: ignore[attr-defined]
        (PACKAGE / "openapi.json").write_text(json.dumps(app.openapi_schema.to_schema()))
        if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
            await run(npm, "ci", "--no-audit", "--no-fund")
        await run(npm, "run", "build")
        types = (PACKAGE / "src" / "schema.d.ts").read_text()
        assert '"/v1/check"' in types and '"/v1/entitlements/{customer}/decisions"' in types
        out = await run(
            "node", "test/live.mjs", env={"TIERGATE_URL": str(api.client.base_url), "TIERGATE_KEY": ADMIN_KEY}
        )
        result = json.loads(out.strip().splitlines()[-1])
        assert result["allowed"] is True
        stored = await api.get(f"/v1/customers/{result['customer']}")
        assert stored["name"] == "From Node"
