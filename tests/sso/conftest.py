"""The SSO stack, started once per test session: a real IdP, Tiergate on a real socket, the token proxy."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests.sso.peers import Admin, Browser, IdP, Tiergate, TokenProxy, free_port, start_idp, start_tiergate

logging.getLogger("httpx2").setLevel(logging.WARNING)


@dataclass
class Stack:
    idp: IdP
    tiergate: Tiergate
    proxy: TokenProxy
    admin: Admin

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read Tiergate's database directly: what a refused sign-in must not have written."""
        path = self.tiergate.db_url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            return list(conn.execute(sql, params).fetchall())

    def users_with(self, email: str) -> int:
        return int(self.rows("SELECT count(*) FROM users WHERE email = ?", email.lower())[0][0])


@pytest.fixture(scope="session")
def sso_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = Path(tmp_path_factory.mktemp("sso"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Members come back to /sso/callback, staff signing in to the console to /admin/sso/callback.
    idp = start_idp(f"{base}/sso/callback {base}/admin/sso/callback", f"{base}/sso/logged-out")
    stops: list[Any] = [idp.stop]
    try:
        tiergate = start_tiergate(root, port)
        stops.append(tiergate.stop)
        proxy = TokenProxy(f"{idp.issuer}/token")
        stops.append(proxy.stop)
        admin = Admin(tiergate.url)
        stops.append(admin.close)
        yield Stack(idp, tiergate, proxy, admin)
    finally:
        for stop in reversed(stops):
            stop()


@pytest.fixture
def browser(sso_stack: Stack) -> Iterator[Browser]:
    client = Browser(sso_stack.tiergate.url)
    yield client
    client.close()


@pytest.fixture
def domain() -> str:
    """An e-mail domain of this test's own, so connections of different tests never collide."""
    return f"t{uuid4().hex[:10]}.test"
