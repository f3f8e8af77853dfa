"""Tiergate-signed end-user access tokens (JWT, ES256) and the JWKS that lets apps verify them offline.

Rotation: `rotate()` makes a new key the signer; earlier keys stay in the JWKS for `RETIRED_KEY_GRACE`
(longer than any token lives) so tokens issued before the rotation keep verifying, then drop out.

The private half is stored sealed by the secret box (`{"sealed": "tgs1.…"}` in `private_jwk`); a row written
before encryption at rest (the clear JWK) still loads, and `seal_private_keys` seals it at start-up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.identity.models import SigningKey
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Unauthenticated
from gateway.kernel.ids import new_id
from gateway.security.secretbox import SecretBox

ALGORITHM = "ES256"
AUDIENCE = "tiergate"
DEFAULT_TTL = timedelta(minutes=15)
MAX_TTL = timedelta(hours=12)
RETIRED_KEY_GRACE = MAX_TTL + timedelta(hours=1)


class InvalidToken(Unauthenticated):
    code = "invalid_token"


class TokenSigner:
    """Signs and verifies with an in-memory snapshot of the keys (loaded from the database), so the
    per-request verify never touches the database."""

    def __init__(self, issuer: str, keys: list[SigningKey], box: SecretBox) -> None:
        self.issuer = issuer
        active = [k for k in keys if k.retired_at is None]
        signing = max(active, key=lambda k: k.created_at) if active else None
        private = {k.kid: ECKey.import_key(private_jwk_of(k, box)) for k in keys}
        self._signing = (signing.kid, private[signing.kid]) if signing is not None else None
        self._keyset = KeySet(list(private.values()))
        self.public_jwks = {"keys": [dict(k.public_jwk) for k in keys]}

    def sign(
        self, claims: Mapping[str, Any], *, at: datetime, ttl: timedelta = DEFAULT_TTL
    ) -> tuple[str, datetime]:
        if self._signing is None:
            raise RuntimeError("no signing key: call KeyService.ensure_key() at start-up")
        ttl = min(ttl, MAX_TTL)
        expires = at + ttl
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": int(at.timestamp()),
            "nbf": int(at.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": new_id("tok"),
        }
        kid, key = self._signing
        header = {"alg": ALGORITHM, "kid": kid, "typ": "at+jwt"}
        return jwt.encode(header, payload, key, algorithms=[ALGORITHM]), expires

    def verify(self, token: str, *, at: datetime) -> dict[str, Any]:
        """Signature, algorithm (ES256 only: `alg: none` and HMAC confusion are refused), issuer, audience
        and lifetime. Raises `InvalidToken` (401)."""
        try:
            decoded = jwt.decode(token, self._keyset, algorithms=[ALGORITHM])
        except (JoseError, ValueError) as exc:
            raise InvalidToken(f"access token rejected: {exc.__class__.__name__}") from None
        claims = decoded.claims
        now = int(at.timestamp())
        if claims.get("iss") != self.issuer or claims.get("aud") != AUDIENCE:
            raise InvalidToken("access token was issued for another issuer or audience")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            raise InvalidToken("access token expired")
        if isinstance(claims.get("nbf"), int) and claims["nbf"] > now + 30:
            raise InvalidToken("access token not valid yet")
        return dict(claims)


def _context(kid: str) -> str:
    return f"signing_keys.private_jwk:{kid}"


def private_jwk_of(row: SigningKey, box: SecretBox) -> dict[str, Any]:
    """The private JWK of a row: sealed (`{"sealed": …}`), or a clear JWK written before encryption."""
    sealed = row.private_jwk.get("sealed")
    if not isinstance(sealed, str):
        return dict(row.private_jwk)
    opened: dict[str, Any] = json.loads(box.open(sealed, context=_context(row.kid)))
    return opened


def sealed_private_jwk(kid: str, jwk: Mapping[str, Any], box: SecretBox) -> dict[str, Any]:
    return {"sealed": box.seal(json.dumps(dict(jwk), sort_keys=True), context=_context(kid))}


class KeyService:
    def __init__(self, session: AsyncSession, clock: Clock, box: SecretBox) -> None:
        self.session = session
        self.clock = clock
        self.box = box

    async def published(self) -> list[SigningKey]:
        cutoff = self.clock.now() - RETIRED_KEY_GRACE
        query = select(SigningKey).where(or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > cutoff))
        return list((await self.session.scalars(query.order_by(SigningKey.created_at))).all())

    async def ensure_key(self) -> None:
        if not [k for k in await self.published() if k.retired_at is None]:
            await self._create()

    async def rotate(self) -> SigningKey:
        now = self.clock.now()
        for key in await self.published():
            if key.retired_at is None:
                key.retired_at = now
        return await self._create()

    async def _create(self) -> SigningKey:
        kid = new_id("kid")
        key = ECKey.generate_key(
            "P-256", parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True
        )
        now = self.clock.now()
        row = SigningKey(
            kid=kid,
            algorithm=ALGORITHM,
            private_jwk=sealed_private_jwk(kid, key.as_dict(private=True), self.box),
            public_jwk=dict(key.as_dict(private=False)),
            created_at=now,
            activated_at=now,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def signer(self, issuer: str) -> TokenSigner:
        return TokenSigner(issuer, await self.published(), self.box)

    async def seal_private_keys(self) -> int:
        """Seal private keys stored in clear (before encryption at rest) or under a retired secret-box key
        (rotation); returns how many rows were rewritten."""
        resealed = 0
        for row in (await self.session.scalars(select(SigningKey))).all():
            sealed = row.private_jwk.get("sealed")
            if isinstance(sealed, str) and not self.box.needs_reseal(sealed):
                continue
            row.private_jwk = sealed_private_jwk(row.kid, private_jwk_of(row, self.box), self.box)
            resealed += 1
        await self.session.flush()
        return resealed
