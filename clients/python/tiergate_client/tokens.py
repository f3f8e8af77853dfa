"""Verifying Tiergate's end-user access tokens offline, with the keys Tiergate publishes (JWKS).

The same checks as the server's own verifier: ES256 only (`alg: none` and HMAC confusion refused),
issuer, audience `tiergate`, expiry, not-before. Keys are fetched once and again when a token names a key
id not seen yet (rotation), at most every `min_refresh_seconds`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .errors import TokenInvalid

ALGORITHM = "ES256"
AUDIENCE = "tiergate"


@dataclass(frozen=True, slots=True)
class EndUser:
    """Who a verified token speaks for."""

    user: str
    customer: str
    roles: tuple[str, ...]
    plan: str | None
    features: frozenset[str]
    claims: dict[str, Any]


class TokenVerifier:
    def __init__(
        self,
        base_url: str,
        *,
        issuer: str | None = None,
        min_refresh_seconds: float = 60.0,
        http: httpx.Client | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jwks_url = base_url.rstrip("/") + "/.well-known/jwks.json"
        self.issuer = issuer
        self.min_refresh_seconds = min_refresh_seconds
        self._http = http or httpx.Client(timeout=5.0)
        self._clock = clock
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched = float("-inf")

    def _refresh(self) -> None:
        response = self._http.get(self.jwks_url)
        response.raise_for_status()
        document = response.json()
        self._keys = KeySet.import_key_set(document)
        self._kids = frozenset(k.get("kid", "") for k in document.get("keys", []))
        self._fetched = time.monotonic()

    def _keyset_for(self, kid: str | None) -> KeySet:
        due = time.monotonic() - self._fetched >= self.min_refresh_seconds
        if self._keys is None or (kid not in self._kids and due):
            self._refresh()
        assert self._keys is not None
        return self._keys

    def verify(self, token: str) -> EndUser:
        try:
            header = _header(token)
            if header.get("alg") != ALGORITHM:
                raise TokenInvalid("only ES256 tokens are accepted")
            decoded = jwt.decode(token, self._keyset_for(header.get("kid")), algorithms=[ALGORITHM])
        except TokenInvalid:
            raise
        except (JoseError, ValueError, IndexError) as exc:
            raise TokenInvalid(f"token does not verify: {exc}") from exc
        claims = dict(decoded.claims)
        now = int(self._clock())
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise TokenInvalid("token was issued by another issuer")
        if claims.get("aud") != AUDIENCE:
            raise TokenInvalid("token was issued for another audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise TokenInvalid("token has expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 30:
            raise TokenInvalid("token is not valid yet")
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("tid"), str):
            raise TokenInvalid("token names no user or customer")
        return EndUser(
            user=claims["sub"],
            customer=claims["tid"],
            roles=tuple(claims.get("roles") or ()),
            plan=claims.get("plan"),
            features=frozenset(claims.get("features") or ()),
            claims=claims,
        )


def _header(token: str) -> dict[str, Any]:
    """The unverified header, only to pick the key and refuse other algorithms before verifying."""
    head = token.split(".", 1)[0]
    padded = head + "=" * (-len(head) % 4)
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(padded))
    return value
