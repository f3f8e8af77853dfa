"""SSO rules without I/O: URL and domain checks, PKCE, ID-token claim rules, seat arithmetic, errors."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.kernel.errors import Conflict, Forbidden, NotFound, Unauthenticated, ValidationFailed

DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9\-]{0,62}$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Asymmetric algorithms only: `none` is never accepted, and HS* would make the client secret (which the
# tenant admin typed into Tiergate) a signing key for identities.
ID_TOKEN_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
# Clock skew tolerated between the IdP and us on exp/iat.
LEEWAY_SECONDS = 60
DEFAULT_SCOPES = ("openid", "email", "profile")


# -- errors ---------------------------------------------------------------------------------------------
class ConnectionNotFound(NotFound):
    code = "sso_connection_not_found"


class DomainTaken(Conflict):
    code = "sso_domain_taken"


class DomainsRequired(ValidationFailed):
    code = "sso_domains_required"


class IdentityNotLinkable(Forbidden):
    """An IdP vouched for an address whose Tiergate account belongs to (or is bound through) another
    organisation: linking it by e-mail would let this IdP sign in as that person."""

    code = "sso_identity_not_linkable"
    title = "This account cannot be linked to this identity provider"


class PlatformKeyRequired(Forbidden):
    code = "platform_key_required"
    title = "Only a platform key may do this"


class SsoNotInPlan(Forbidden):
    code = "sso_not_in_plan"
    title = "Single sign-on is not part of this plan"


class SeatLimitReached(Forbidden):
    code = "seat_limit_reached"
    title = "No seat left for a new member"


class MembershipRemoved(Forbidden):
    code = "membership_removed"
    title = "This account was removed from the organisation"


class NotAMember(Forbidden):
    code = "not_a_member"
    title = "Not a member of this organisation"


class NoSsoRoute(NotFound):
    code = "sso_no_connection"
    title = "No single sign-on for this address or organisation"


class SignInFailed(Unauthenticated):
    """The IdP's answer did not prove who the user is (state, issuer, code, ID token). `error_code` says
    which check failed; nothing is created when this is raised."""

    code = "sso_sign_in_failed"
    title = "Sign-in failed"


class SessionMissing(Unauthenticated):
    code = "sso_session_missing"
    title = "Not signed in"


# -- configuration rules --------------------------------------------------------------------------------
def check_url(value: str, field: str) -> str:
    """An IdP URL: https, or http only on a loopback host (a local IdP in development and tests)."""
    # ASCII without spaces or controls (an international host is written in punycode): anything else is
    # either a typo or an attempt to make two URLs look alike.
    if not value.isascii() or not value.isprintable() or any(c.isspace() for c in value):
        raise ValidationFailed(f"{field} must be a plain ASCII URL", field=field)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is what rejects "host:99999" and "host:x"
    except ValueError:
        raise ValidationFailed(f"{field} is not a valid URL", field=field) from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValidationFailed(f"{field} must be an absolute https URL", field=field)
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValidationFailed(f"{field} must use https (http only for a loopback IdP)", field=field)
    if parts.fragment or parts.username or parts.password:
        raise ValidationFailed(f"{field} must not carry a fragment or credentials", field=field)
    return value


def normalize_domain(value: str) -> str:
    domain = value.strip().lower().rstrip(".")
    if not DOMAIN_PATTERN.match(domain):
        raise ValidationFailed(f"{value!r} is not an e-mail domain", field="allowed_domains")
    return domain


def normalize_domains(values: list[str]) -> list[str]:
    return sorted({normalize_domain(v) for v in values})


def email_domain(email: str) -> str | None:
    local, at, domain = email.strip().lower().rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        return normalize_domain(domain)
    except ValidationFailed:
        return None


# -- PKCE, state, nonce ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str
    method: str = "S256"


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def new_pkce() -> Pkce:
    # 64 url-safe characters: inside RFC 7636's 43-128, with 384 bits of entropy.
    verifier = secrets.token_urlsafe(48)
    return Pkce(verifier, s256(verifier))


def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


# -- ID token claims ------------------------------------------------------------------------------------
def check_id_token_claims(
    claims: Mapping[str, Any], *, issuer: str, client_id: str, nonce: str, now: int
) -> None:
    """OIDC Core §3.1.3.7 for a signature-checked token: iss, aud (and azp), exp, iat, nonce, sub.
    Raises `SignInFailed` with a code naming the failed check."""

    def fail(code: str, detail: str) -> None:
        raise SignInFailed(detail, code=code)

    if claims.get("iss") != issuer:
        fail("id_token_wrong_issuer", "the ID token was issued by another issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if client_id not in audiences:
        fail("id_token_wrong_audience", "the ID token was issued for another client")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        fail("id_token_wrong_audience", "the ID token has several audiences and another authorised party")
    exp = claims.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        fail("id_token_expired", "the ID token has no expiry")
    elif exp + LEEWAY_SECONDS <= now:
        fail("id_token_expired", "the ID token has expired")
    iat = claims.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool) or iat > now + LEEWAY_SECONDS:
        fail("id_token_not_yet_valid", "the ID token's issue time is missing or in the future")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(str(claims["nonce"]), nonce):
        fail("id_token_wrong_nonce", "the ID token does not answer this sign-in (nonce)")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        fail("id_token_no_subject", "the ID token names no subject")


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The e-mail address the IdP vouches for, lower-cased; None unless `email_verified` is true."""
    email = claims.get("email")
    if not isinstance(email, str) or claims.get("email_verified") is not True:
        return None
    return email.strip().lower() if email_domain(email) else None


# -- seats ----------------------------------------------------------------------------------------------
def seat_available(*, active_members: int, limit: int | None, soft: bool) -> bool:
    """Room for one more member. `limit` None = unlimited; a soft limit admits overage (billed)."""
    return limit is None or soft or active_members + 1 <= limit
