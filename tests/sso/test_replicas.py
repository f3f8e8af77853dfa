"""Two replicas behind one public address, sessions and pending sign-ins in Redis (production mode): a
sign-in started on one replica completes on the other, and the session works on both, until sign-out on
either ends it everywhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.sso.conftest import Stack
from tests.sso.peers import Browser, Tiergate, free_port, start_tiergate
from tests.sso.test_session_store import _redis_url


@pytest.fixture(scope="module")
def replicas(sso_stack: Stack) -> Iterator[tuple[Tiergate, Tiergate]]:
    redis_url = _redis_url()
    import redis

    try:
        redis.Redis.from_url(redis_url).ping()
    except redis.exceptions.ConnectionError:
        if sso_stack.tiergate.db_url and __import__("os").environ.get("CI"):
            pytest.fail("CI is set but Redis is not reachable at TIERGATE_TEST_REDIS_URL")
        pytest.skip(f"no Redis at {redis_url}")
    root = Path(sso_stack.tiergate.db_url.split(":///", 1)[1]).parent
    # The IdP knows one redirect URI, the "load balancer" address: both replicas present it as theirs.
    public = sso_stack.tiergate.url
    first = start_tiergate(root, free_port(), redis_url=redis_url, public_url=public, prepare=False)
    try:
        second = start_tiergate(root, free_port(), redis_url=redis_url, public_url=public, prepare=False)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def caught_up(stack: Stack, *replicas: Tiergate) -> None:
    """Each replica's engine tails the shared outbox on its own (poll, or a Redis nudge): wait for it."""
    target = httpx.get(f"{stack.tiergate.url}/health").json()["index_version"]
    for replica in replicas:
        for _ in range(400):
            if httpx.get(f"{replica.url}/health").json()["index_version"] >= target:
                break
            time.sleep(0.025)
        else:
            raise AssertionError(f"{replica.url} did not reach index version {target}")


def on(replica: Tiergate, url: str) -> str:
    """The same request, delivered by the load balancer to `replica`."""
    target = urlsplit(replica.url)
    return urlunsplit(urlsplit(url)._replace(netloc=target.netloc))


def test_a_sign_in_spans_replicas(sso_stack: Stack, replicas: tuple[Tiergate, Tiergate], domain: str) -> None:
    first, second = replicas
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", default_role="editor")
    admin.connection(tenant, sso_stack.idp.issuer, [domain])
    caught_up(sso_stack, first, second)
    browser = Browser(sso_stack.tiergate.url)  # the public address the IdP redirects to
    try:
        started = browser.client.get(f"{first.url}/sso/login", params={"email": f"rae@{domain}"})
        assert started.status_code == 302, started.text
        authorize = started.headers["location"]
        callback = browser.authorize(authorize, f"rae@{domain}")
        done = browser.client.get(on(second, callback))  # the IdP's redirect lands on the second
        assert done.status_code == 303, done.text
        for replica in (first, second):
            info = browser.client.get(f"{replica.url}/sso/session")
            assert info.status_code == 200, info.text
            assert info.json()["customer"] == tenant and info.json()["email"] == f"rae@{domain}"
        # The memory-mode server beside them shares the database, not the sessions.
        assert browser.client.get(f"{sso_stack.tiergate.url}/sso/session").status_code == 401
        # A replayed callback fails on either replica: the state was taken once, in Redis.
        for replica in (first, second):
            again = browser.client.get(on(replica, callback), headers={"Accept": "application/json"})
            assert again.status_code == 401 and again.json()["code"] == "state_mismatch"

        assert browser.client.post(f"{first.url}/sso/logout").status_code == 303
        assert browser.client.get(f"{second.url}/sso/session").status_code == 401
    finally:
        browser.close()
