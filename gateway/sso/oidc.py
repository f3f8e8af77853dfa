"""The OIDC relying party's network side: discovery (cached), the JWKS (cached, refetched once when a token
names an unknown `kid`), the authorization-code exchange with authlib's `AsyncOAuth2Client` (httpx2), and
ID-token verification with joserfc.

This is an adapter: the service hands it a `ProviderConfig` and gets back verified claims or a
`SignInFailed` naming the check that failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet

from gateway.sso.domain import ID_TOKEN_ALGORITHMS, SignInFailed, check_id_token_claims

DISCOVERY_PATH = "/.well-known/openid-configuration"
HTTP_TIMEOUT = 10.0
# An attacker can send tokens with made-up kids: refetch the JWKS for an unknown kid at most this often.
JWKS_REFETCH_MIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What sign-in needs from one connection: its IdP's endpoints (explicit or discovered) and client."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    iss_parameter_supported: bool = False


@dataclass(frozen=True, slots=True)
class Discovered:
    issuer: str
    authorization_endpoint: str | None
    token_endpoint: str | None
    jwks_uri: str | None
    end_session_endpoint: str | None
    iss_parameter_supported: bool


HttpFactory = Callable[[], httpx2.AsyncClient]


def _default_http() -> httpx2.AsyncClient:
    # No redirects: an IdP endpoint that redirects elsewhere is a misconfiguration, not something to follow.
    return httpx2.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)


class OidcClient:
    def __init__(
        self,
        *,
        discovery_ttl_seconds: float = 3600.0,
        jwks_ttl_seconds: float = 3600.0,
        http: HttpFactory = _default_http,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.discovery_ttl = discovery_ttl_seconds
        self.jwks_ttl = jwks_ttl_seconds
        self._http = http
        self._monotonic = monotonic
        self._discovered: dict[str, tuple[float, Discovered]] = {}
        self._jwks: dict[str, tuple[float, KeySet]] = {}
        self.fetches: dict[str, int] = {}  # URL → times fetched; lets tests see the caches work

    # -- fetching -----------------------------------------------------------------------------------
    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        self.fetches[url] = self.fetches.get(url, 0) + 1
        try:
            async with self._http() as http:
                response = await http.get(url, headers={"Accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise SignInFailed(
                f"the IdP's {what} could not be fetched: {exc.__class__.__name__}", code="idp_unreachable"
            ) from None
        if response.status_code != 200:
            raise SignInFailed(f"the IdP's {what} answered {response.status_code}", code="idp_unreachable")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SignInFailed(f"the IdP's {what} is not a JSON object", code="idp_bad_metadata")
        return body

    async def discover(self, issuer: str) -> Discovered:
        """The issuer's discovery document, cached for `discovery_ttl_seconds`. Its `issuer` must equal the
        configured one exactly (OIDC Discovery §4.3), or a document could speak for another IdP."""
        hit = self._discovered.get(issuer)
        now = self._monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        doc = await self._get_json(issuer.rstrip("/") + DISCOVERY_PATH, "discovery document")
        if doc.get("issuer") != issuer:
            raise SignInFailed("the discovery document names another issuer", code="idp_bad_metadata")

        def url(name: str) -> str | None:
            value = doc.get(name)
            return value if isinstance(value, str) and value else None

        found = Discovered(
            issuer=issuer,
            authorization_endpoint=url("authorization_endpoint"),
            token_endpoint=url("token_endpoint"),
            jwks_uri=url("jwks_uri"),
            end_session_endpoint=url("end_session_endpoint"),
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        )
        self._discovered[issuer] = (now + self.discovery_ttl, found)
        return found

    async def _keyset(self, jwks_uri: str, *, refresh: bool = False) -> KeySet:
        hit = self._jwks.get(jwks_uri)
        now = self._monotonic()
        if hit is not None and not refresh and hit[0] > now:
            return hit[1]
        if hit is not None and refresh and hit[0] - self.jwks_ttl + JWKS_REFETCH_MIN_SECONDS > now:
            return hit[1]  # fetched moments ago: an unknown kid now is an attacker's, not a rotation
        doc = await self._get_json(jwks_uri, "JWKS")
        try:
            keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError):
            raise SignInFailed("the IdP's JWKS is not a valid key set", code="idp_bad_metadata") from None
        self._jwks[jwks_uri] = (now + self.jwks_ttl, keys)
        return keys

    # -- the flow -----------------------------------------------------------------------------------
    @staticmethod
    def authorization_url(
        provider: ProviderConfig, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        params = {
            "response_type": "code",
            "client_id": provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(provider.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in provider.authorization_endpoint else "?"
        return provider.authorization_endpoint + separator + urlencode(params)

    @staticmethod
    def end_session_url(
        provider: ProviderConfig, *, id_token_hint: str | None, post_logout_redirect_uri: str, state: str
    ) -> str | None:
        if provider.end_session_endpoint is None:
            return None
        params = {
            "client_id": provider.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "state": state,
            **({"id_token_hint": id_token_hint} if id_token_hint else {}),
        }
        separator = "&" if "?" in provider.end_session_endpoint else "?"
        return provider.end_session_endpoint + separator + urlencode(params)

    async def exchange_code(
        self, provider: ProviderConfig, *, code: str, code_verifier: str, redirect_uri: str
    ) -> dict[str, Any]:
        """Redeem the code at the token endpoint (client_secret_basic, with the PKCE verifier)."""
        client = AsyncOAuth2Client(
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            redirect_uri=redirect_uri,
            timeout=HTTP_TIMEOUT,
            follow_redirects=False,
        )
        try:
            async with client:
                token = await client.fetch_token(
                    provider.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            raise SignInFailed(
                f"the IdP refused the code: {exc.error}", code="code_exchange_failed"
            ) from None
        except (httpx2.HTTPError, ValueError) as exc:
            raise SignInFailed(
                f"the token endpoint could not be used: {exc.__class__.__name__}", code="code_exchange_failed"
            ) from None
        if not isinstance(token, Mapping) or not isinstance(token.get("id_token"), str):
            raise SignInFailed("the token response carries no ID token", code="code_exchange_failed")
        return dict(token)

    async def verify_id_token(
        self, provider: ProviderConfig, id_token: str, *, nonce: str, now: int
    ) -> dict[str, Any]:
        """Signature against the IdP's JWKS with an allowed asymmetric algorithm, then the claim rules."""
        header = _header(id_token)
        alg = header.get("alg")
        if alg not in ID_TOKEN_ALGORITHMS:
            raise SignInFailed(f"ID token algorithm {alg!r} is not accepted", code="id_token_bad_algorithm")
        kid = header.get("kid")
        keys = await self._keyset(provider.jwks_uri)
        if kid is not None and not any(k.kid == kid for k in keys):
            keys = await self._keyset(provider.jwks_uri, refresh=True)
        try:
            decoded = jwt.decode(id_token, keys, algorithms=[alg])
        except BadSignatureError:
            raise SignInFailed(
                "the ID token's signature does not verify", code="id_token_bad_signature"
            ) from None
        except (JoseError, ValueError) as exc:
            raise SignInFailed(
                f"the ID token was rejected: {exc.__class__.__name__}", code="id_token_bad_signature"
            ) from None
        claims = dict(decoded.claims)
        check_id_token_claims(
            claims, issuer=provider.issuer, client_id=provider.client_id, nonce=nonce, now=now
        )
        return claims


def _header(token: str) -> dict[str, Any]:
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError, json.JSONDecodeError):
        raise SignInFailed("the ID token is not a compact JWS", code="id_token_malformed") from None
    return dict(header)
