"""The pure SSO rules: ID-token claim checks, PKCE, domains and URLs, seats."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.kernel.errors import ValidationFailed
from gateway.sso.domain import (
    LEEWAY_SECONDS,
    SignInFailed,
    check_id_token_claims,
    check_url,
    email_domain,
    new_pkce,
    normalize_domain,
    s256,
    seat_available,
    verified_email,
)

NOW = 1_800_000_000
ISSUER = "https://idp.example.com"
CLIENT = "client-1"
NONCE = "n-0S6_WzA2Mj"


def good() -> dict[str, Any]:
    return {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "248289761001",
        "nonce": NONCE,
        "iat": NOW - 5,
        "exp": NOW + 300,
    }


def check(claims: dict[str, Any]) -> None:
    check_id_token_claims(claims, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=NOW)


def test_a_good_token_passes() -> None:
    check(good())
    check({**good(), "aud": [CLIENT, "other"], "azp": CLIENT})


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"iss": "https://evil.example.com"}, "id_token_wrong_issuer"),
        ({"iss": ISSUER + "/"}, "id_token_wrong_issuer"),
        ({"aud": "another-client"}, "id_token_wrong_audience"),
        ({"aud": ["another-client"]}, "id_token_wrong_audience"),
        ({"aud": [CLIENT, "other"]}, "id_token_wrong_audience"),  # several audiences need azp = us
        ({"aud": [CLIENT, "other"], "azp": "other"}, "id_token_wrong_audience"),
        ({"exp": NOW - LEEWAY_SECONDS}, "id_token_expired"),
        ({"exp": "tomorrow"}, "id_token_expired"),
        ({"exp": True}, "id_token_expired"),
        ({"iat": NOW + LEEWAY_SECONDS + 1}, "id_token_not_yet_valid"),
        ({"nonce": "another"}, "id_token_wrong_nonce"),
        ({"nonce": 7}, "id_token_wrong_nonce"),
        ({"sub": ""}, "id_token_no_subject"),
    ],
)
def test_each_claim_rule_refuses_with_its_code(change: dict[str, Any], code: str) -> None:
    with pytest.raises(SignInFailed) as caught:
        check({**good(), **change})
    assert caught.value.error_code == code and caught.value.status == 401


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "iat", "nonce", "sub"])
def test_every_required_claim_must_be_present(missing: str) -> None:
    claims = good()
    del claims[missing]
    with pytest.raises(SignInFailed):
        check(claims)


def test_expiry_leeway_is_exact() -> None:
    check({**good(), "exp": NOW - LEEWAY_SECONDS + 1})
    with pytest.raises(SignInFailed):
        check({**good(), "exp": NOW - LEEWAY_SECONDS})


def test_pkce_matches_rfc7636_appendix_b() -> None:
    assert (
        s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )
    pkce = new_pkce()
    assert 43 <= len(pkce.verifier) <= 128 and pkce.challenge == s256(pkce.verifier) and pkce.method == "S256"
    assert new_pkce().verifier != pkce.verifier


def test_domains_and_emails() -> None:
    assert normalize_domain(" Acme.COM. ") == "acme.com"
    assert email_domain("Alice@Sub.Acme.com") == "sub.acme.com"
    for bad in ("acme", "-acme.com", "acme..com", "ac me.com", "acme.1com", ""):
        with pytest.raises(ValidationFailed):
            normalize_domain(bad)
    assert email_domain("no-at-sign") is None and email_domain("@acme.com") is None


def test_only_a_verified_email_counts() -> None:
    assert verified_email({"email": "Alice@Acme.com", "email_verified": True}) == "alice@acme.com"
    assert verified_email({"email": "alice@acme.com", "email_verified": False}) is None
    assert verified_email({"email": "alice@acme.com", "email_verified": "true"}) is None
    assert verified_email({"email": "alice@acme.com"}) is None


def test_idp_urls_are_https_except_on_loopback() -> None:
    assert check_url("https://login.acme.com/oidc", "issuer")
    assert check_url("http://127.0.0.1:4000", "issuer") and check_url("http://localhost:4000", "issuer")
    for bad in (
        "http://login.acme.com",
        "ftp://acme.com",
        "https://u:p@acme.com",
        "https://acme.com/#x",
        "/x",
    ):
        with pytest.raises(ValidationFailed):
            check_url(bad, "issuer")
    # Found by schemathesis: these made urlsplit raise (a 500) before they were refused.
    for malformed in (
        "https://\udabc\uddfa\u00af]x",
        "https://[::1",
        "https://acme.com:99999/",
        "https://acme.com:x/",
        "https://acme.com/a b",
        "https://acme.com/\x1e",
        "https://\u0430cme.com",
    ):
        with pytest.raises(ValidationFailed):
            check_url(malformed, "issuer")


@given(
    active=st.integers(min_value=0, max_value=1000),
    limit=st.one_of(st.none(), st.integers(min_value=0, max_value=1000)),
    soft=st.booleans(),
)
def test_seat_rule(active: int, limit: int | None, soft: bool) -> None:
    admitted = seat_available(active_members=active, limit=limit, soft=soft)
    if limit is None or soft:
        assert admitted
    else:
        # A hard limit admits the member who brings the count to `limit`, never the one after.
        assert admitted == (active + 1 <= limit)
