"""The relying party's verifier and caches, with the IdP's documents served by an in-process transport and
ID tokens signed by keys this test controls (the full flow against the real IdP is in test_flow.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from gateway.sso.domain import SignInFailed
from gateway.sso.oidc import OidcClient, ProviderConfig

ISSUER = "https://idp.example.com"
NOW = 1_800_000_000


class FakeIdp:
    def __init__(self) -> None:
        self.keys: list[Any] = [RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})]
        self.discovery_issuer = ISSUER
        self.hits: dict[str, int] = {}

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "/.well-known/openid-configuration":
            return httpx2.Response(
                200,
                json={
                    "issuer": self.discovery_issuer,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "end_session_endpoint": f"{ISSUER}/logout",
                    "authorization_response_iss_parameter_supported": True,
                },
            )
        if path == "/jwks":
            return httpx2.Response(200, json={"keys": [k.as_dict(private=False) for k in self.keys]})
        return httpx2.Response(404)


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def idp() -> FakeIdp:
    return FakeIdp()


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def client(idp: FakeIdp, ticker: Ticker) -> OidcClient:
    return OidcClient(
        discovery_ttl_seconds=300,
        jwks_ttl_seconds=300,
        http=lambda: httpx2.AsyncClient(transport=httpx2.MockTransport(idp.handler)),
        monotonic=ticker,
    )


PROVIDER = ProviderConfig(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/auth",
    token_endpoint=f"{ISSUER}/token",
    jwks_uri=f"{ISSUER}/jwks",
    end_session_endpoint=None,
    client_id="client-1",
    client_secret="s",
    scopes=("openid", "email"),
)


def claims(**over: Any) -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "aud": "client-1",
        "sub": "u1",
        "nonce": "n1",
        "iat": NOW,
        "exp": NOW + 300,
        **over,
    }


def sign(key: Any, alg: str = "RS256", **over: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid}, claims(**over), key, algorithms=[alg])


async def test_discovery_is_cached_and_its_issuer_must_match(
    client: OidcClient, idp: FakeIdp, ticker: Ticker
) -> None:
    found = await client.discover(ISSUER)
    assert found.jwks_uri == f"{ISSUER}/jwks" and found.iss_parameter_supported
    await client.discover(ISSUER)
    assert idp.hits["/.well-known/openid-configuration"] == 1
    ticker.now += 301
    idp.discovery_issuer = "https://someone-else.example.com"
    with pytest.raises(SignInFailed) as caught:
        await client.discover(ISSUER)
    assert caught.value.error_code == "idp_bad_metadata"
    assert idp.hits["/.well-known/openid-configuration"] == 2


async def test_a_valid_token_verifies_and_the_jwks_is_fetched_once(client: OidcClient, idp: FakeIdp) -> None:
    for _ in range(3):
        got = await client.verify_id_token(PROVIDER, sign(idp.keys[0]), nonce="n1", now=NOW)
        assert got["sub"] == "u1"
    assert idp.hits["/jwks"] == 1


async def test_an_unknown_kid_refetches_the_jwks_once(
    client: OidcClient, idp: FakeIdp, ticker: Ticker
) -> None:
    await client.verify_id_token(PROVIDER, sign(idp.keys[0]), nonce="n1", now=NOW)
    rotated = ECKey.generate_key("P-256", parameters={"kid": "k2", "alg": "ES256"})
    idp.keys.append(rotated)
    ticker.now += 11  # past the refetch floor
    got = await client.verify_id_token(PROVIDER, sign(rotated, "ES256"), nonce="n1", now=NOW)
    assert got["sub"] == "u1" and idp.hits["/jwks"] == 2
    # A made-up kid right after: refused, and no fetch storm (the floor holds it to the cached set).
    stranger = RSAKey.generate_key(2048, parameters={"kid": "k-unknown", "alg": "RS256"})
    for _ in range(5):
        with pytest.raises(SignInFailed) as caught:
            await client.verify_id_token(PROVIDER, sign(stranger), nonce="n1", now=NOW)
        assert caught.value.error_code == "id_token_bad_signature"
    assert idp.hits["/jwks"] == 2


def _unsigned(alg: str) -> str:
    def b64(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'kid': 'k1'})}.{b64(claims())}."


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_alg_none_is_refused(client: OidcClient, alg: str) -> None:
    with pytest.raises(SignInFailed) as caught:
        await client.verify_id_token(PROVIDER, _unsigned(alg), nonce="n1", now=NOW)
    assert caught.value.error_code == "id_token_bad_algorithm"


async def test_hmac_signed_with_the_client_secret_is_refused(client: OidcClient) -> None:
    # The confusion attack: an HS256 token "signed" with a secret the attacker may know.
    key = OctKey.import_key(b"s" * 32)
    token = jwt.encode({"alg": "HS256", "kid": "k1"}, claims(), key, algorithms=["HS256"])
    with pytest.raises(SignInFailed) as caught:
        await client.verify_id_token(PROVIDER, token, nonce="n1", now=NOW)
    assert caught.value.error_code == "id_token_bad_algorithm"


async def test_a_token_signed_by_another_key_with_the_same_kid_is_refused(
    client: OidcClient, idp: FakeIdp
) -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
    with pytest.raises(SignInFailed) as caught:
        await client.verify_id_token(PROVIDER, sign(impostor), nonce="n1", now=NOW)
    assert caught.value.error_code == "id_token_bad_signature"


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"iss": "https://evil.example.com"}, "id_token_wrong_issuer"),
        ({"aud": "another-client"}, "id_token_wrong_audience"),
        ({"exp": NOW - 3600, "iat": NOW - 7200}, "id_token_expired"),
        ({"nonce": "replayed"}, "id_token_wrong_nonce"),
    ],
)
async def test_signed_but_wrong_claims_are_refused(
    client: OidcClient, idp: FakeIdp, over: dict[str, Any], code: str
) -> None:
    with pytest.raises(SignInFailed) as caught:
        await client.verify_id_token(PROVIDER, sign(idp.keys[0], **over), nonce="n1", now=NOW)
    assert caught.value.error_code == code


async def test_garbage_is_refused(client: OidcClient) -> None:
    for token in ("", "a.b", "not-a-jwt", "e30.e30.e30"):
        with pytest.raises(SignInFailed):
            await client.verify_id_token(PROVIDER, token, nonce="n1", now=NOW)
