"""A member signed in with SSO opens the billing portal when their role manages billing (issue #13: the
portal's entry "or SSO sign-in for members with a billing role"), against the real test IdP: the
decision engine says who may (`billing` / `update`, as /v1/check answers); anyone else gets 403
`billing_not_allowed` and no portal session; without a sign-in the browser goes to /sso/login."""

from __future__ import annotations

from tests.sso.conftest import Stack
from tests.sso.peers import Browser


def test_an_admin_member_opens_the_portal_from_sso_and_a_viewer_is_refused(
    sso_stack: Stack, browser: Browser, domain: str
) -> None:
    admin_email, viewer_email = f"ada@{domain}", f"val@{domain}"
    tenant = sso_stack.admin.tenant("enterprise_monthly", **{admin_email: "admin", viewer_email: "viewer"})
    sso_stack.admin.connection(tenant, sso_stack.idp.issuer, [domain])

    not_signed_in = browser.get("/portal/sso")
    assert (not_signed_in.status_code, not_signed_in.headers["location"]) == (303, "/sso/login")

    assert browser.sign_in(admin_email, email=admin_email).status_code == 303
    assert "/portal/sso" in browser.get("/sso/me").text  # the signed-in page shows the way
    entered = browser.get("/portal/sso")
    assert (entered.status_code, entered.headers["location"]) == (303, "/portal")
    portal = browser.get("/portal")
    assert portal.status_code == 200 and "Enterprise" in portal.text
    opened = sso_stack.rows(
        "SELECT tenant_id FROM outbox WHERE type = 'portal_session.opened_by_sso' AND tenant_id = ?", tenant
    )
    assert opened == [(tenant,)]

    viewer = Browser(sso_stack.tiergate.url)
    try:
        assert viewer.sign_in(viewer_email, email=viewer_email).status_code == 303
        refused = viewer.get("/portal/sso", headers={"Accept": "text/html"})
        assert refused.status_code == 403 and "billing_not_allowed" in refused.text
        assert viewer.client.cookies.get("tg_portal") is None
        assert viewer.get("/portal").status_code == 401
    finally:
        viewer.close()
