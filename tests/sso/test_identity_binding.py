"""Issue 9 #6, against the real IdP: a sign-in is bound to the external identity (connection, iss, sub), and a
tenant's IdP never signs in as another organisation's user by asserting their e-mail address."""

from __future__ import annotations

import sqlite3

from tests.sso.conftest import Stack
from tests.sso.peers import Browser


def _execute(stack: Stack, sql: str, *params: object) -> None:
    path = stack.tiergate.db_url.split(":///", 1)[1]
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)


def _identities(stack: Stack, subject: str) -> list[tuple[object, ...]]:
    return stack.rows(
        "SELECT connection_id, issuer, subject, user_id, tenant_id FROM sso_identities WHERE subject = ?",
        subject,
    )


def test_another_tenants_idp_cannot_sign_in_as_a_companys_user(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    victim = f"ceo@{domain}"
    company = admin.tenant("enterprise_monthly", **{victim: "owner"})  # no SSO of its own (yet)
    [member] = admin.members(company)
    attacker = admin.tenant("enterprise_monthly")
    # The attacker's own IdP claims the company's domain: nobody has claimed or verified it.
    admin.connection(attacker, sso_stack.idp.issuer, [domain])

    for route in ({"tenant": attacker}, {"email": victim}):
        refused = browser.sign_in(victim, **route)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "sso_identity_not_linkable"
        assert "tg_session" not in refused.headers.get("set-cookie", "")
        assert browser.get("/sso/session").status_code == 401

    assert admin.members(attacker) == []
    assert [(m["user"], m["status"]) for m in admin.members(company)] == [(member["user"], "active")]
    assert _identities(sso_stack, victim) == []
    # A new address of that domain is the attacker's own business: it joins the attacker's tenant only.
    joined = browser.sign_in(f"new-hire@{domain}", tenant=attacker)
    assert joined.status_code == 303, joined.text
    assert [m["email"] for m in admin.members(attacker)] == [f"new-hire@{domain}"]


def test_a_second_sign_in_with_the_same_subject_is_the_same_user(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly")
    connection = admin.connection(tenant, sso_stack.idp.issuer, [domain])
    login = f"ana@{domain}"

    assert browser.sign_in(login, email=login).status_code == 303
    user = browser.get("/sso/session").json()["user"]
    assert _identities(sso_stack, login) == [(connection["id"], sso_stack.idp.issuer, login, user, tenant)]

    # Tiergate's copy of the address changes; the IdP's subject still names the same person.
    _execute(sso_stack, "UPDATE users SET email = ? WHERE id = ?", f"ana.renamed@{domain}", user)
    again = browser.sign_in(login, tenant=tenant)
    assert again.status_code == 303, again.text
    assert browser.get("/sso/session").json()["user"] == user
    assert sso_stack.users_with(login) == 0  # found by (iss, sub), not by e-mail: no second account
    assert len(_identities(sso_stack, login)) == 1
    assert [m["user"] for m in admin.members(tenant)] == [user]


def test_a_member_of_this_tenant_alone_is_linked_on_first_sign_in(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin = sso_stack.admin
    tenant = admin.tenant("enterprise_monthly", **{f"bo@{domain}": "editor"})
    [member] = admin.members(tenant)
    connection = admin.connection(tenant, sso_stack.idp.issuer, [domain])
    assert browser.sign_in(f"bo@{domain}", tenant=tenant).status_code == 303
    assert _identities(sso_stack, f"bo@{domain}") == [
        (connection["id"], sso_stack.idp.issuer, f"bo@{domain}", member["user"], tenant)
    ]
