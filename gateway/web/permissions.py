"""The permission matrix: who may call each operation of Tiergate, and with which API-key scope.

One table, read by one guard (`gateway.identity.http.authorize`, applied to the whole app) and written
into the OpenAPI document of every operation (`gateway.web.openapi`). An operation that is not in the
table is refused for everyone (403 `not_in_permission_matrix`), and `tests/security/` fails until it is.

How to read a row: `"METHOD /path/{param}": (who, scope)`, the path as the OpenAPI document spells it.

Who may call (the kinds of caller):
- **platform key**: a secret API key with no tenant, held by whoever runs Tiergate (the SaaS vendor).
- **tenant key**: a secret API key bound to one customer (tenant). It is what an app uses *for* that
  tenant: checks, end-user tokens, members, invites, its own IdP and webhooks, and reading its own
  subscriptions, entitlements and invoices. Whatever it names of another tenant is a 404, as if missing.
  Changing the catalog or tax rates, coupons and promotion codes, policies, credit, invoices (create,
  pay, void, ...), subscriptions, metrics and test clocks are for platform keys only: a tenant must not
  price, discount or bill itself. It may read the shared price list and tax rates (what it can buy, and
  what its invoices show), and ask whether a promotion code would apply to its own checkout.
- **staff**: people operating Tiergate in the admin console (gateway/admin): a staff session token on /v1
  rows that name staff, or the session cookie on console pages (`STAFF_PAGE` rows); the staff policy
  decides the row's scope for the member's role.
- **end user**: a person of a tenant, with a Tiergate access token or a browser session (SSO).
- **SCIM token**: a tenant's IdP provisioning its members (`/scim/v2`).
- **anyone**: no credential (the JWKS, the docs, SSO sign-in pages, the health probe).

The scope is what an API key needs on top of its kind (`Principal.allows`: `*`, `resource:*`, and
`resource:write` implying `resource:read`). Operations that other credentials guard (end user, SCIM
token, anyone) have no scope; the route itself checks that credential.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.kernel.auth import Principal
from gateway.kernel.errors import Forbidden


class Caller(enum.Flag):
    PLATFORM_KEY = enum.auto()
    TENANT_KEY = enum.auto()
    STAFF = enum.auto()
    END_USER = enum.auto()
    SCIM_TOKEN = enum.auto()
    ANYONE = enum.auto()


# The combinations the table uses, named for what they mean.
PLATFORM = Caller.PLATFORM_KEY | Caller.STAFF
TENANT = PLATFORM | Caller.TENANT_KEY  # tenant keys: their own tenant only
END_USER = Caller.END_USER
# A console page (gateway/admin and the operators' pages of gateway/portal): a staff member's session,
# from the `tg_staff` cookie (pages only; never on /v1), asked of the staff policy for the row's scope.
STAFF_PAGE = Caller.STAFF
SCIM = Caller.SCIM_TOKEN
ANYONE = Caller.ANYONE
API_KEY_KINDS = Caller.PLATFORM_KEY | Caller.TENANT_KEY

# How each kind reads in the OpenAPI document.
CALLER_LABELS: dict[Caller, str] = {
    Caller.PLATFORM_KEY: "platform key",
    Caller.TENANT_KEY: "tenant key (own tenant only)",
    Caller.STAFF: "staff",
    Caller.END_USER: "end user (access token or session)",
    Caller.SCIM_TOKEN: "SCIM token (own tenant only)",
    Caller.ANYONE: "anyone",
}


@dataclass(frozen=True, slots=True)
class Access:
    callers: Caller
    scope: str | None = None

    @property
    def by_api_key(self) -> bool:
        """Whether an API key is the credential (then the guard authenticates it and checks the row)."""
        return bool(self.callers & API_KEY_KINDS)

    def kinds(self) -> list[str]:
        """The kinds of caller as machine names (`platform_key`, `tenant_key`, ...)."""
        return [kind.name.lower() for kind in CALLER_LABELS if kind in self.callers and kind.name]

    def labels(self) -> list[str]:
        return [label for kind, label in CALLER_LABELS.items() if kind in self.callers]


# fmt: off
_TABLE: dict[str, tuple[Caller, str | None]] = {
    # -- API keys: a tenant key manages its own tenant's keys, never platform ones -------------------------
    "GET /v1/api_keys":                                             (TENANT, "api_keys:read"),
    "POST /v1/api_keys":                                            (TENANT, "api_keys:write"),
    "POST /v1/api_keys/{key_id}/revoke":                            (TENANT, "api_keys:write"),
    # -- the catalog: shared by every tenant; tenants may read the price list, never change it -------------
    "GET /v1/products":                                             (TENANT, "catalog:read"),
    "POST /v1/products":                                            (PLATFORM, "catalog:write"),
    "GET /v1/products/{product_id}":                                (TENANT, "catalog:read"),
    "PATCH /v1/products/{product_id}":                              (PLATFORM, "catalog:write"),
    "GET /v1/features":                                             (TENANT, "catalog:read"),
    "POST /v1/features":                                            (PLATFORM, "catalog:write"),
    "GET /v1/features/{feature}":                                   (TENANT, "catalog:read"),
    "GET /v1/plans":                                                (TENANT, "catalog:read"),
    "POST /v1/plans":                                               (PLATFORM, "catalog:write"),
    "GET /v1/plans/{plan}":                                         (TENANT, "catalog:read"),
    "PATCH /v1/plans/{plan}":                                       (PLATFORM, "catalog:write"),
    "GET /v1/plans/{plan}/versions":                                (TENANT, "catalog:read"),
    "POST /v1/plans/{plan}/versions":                               (PLATFORM, "catalog:write"),
    "POST /v1/plans/{plan}/versions/{version}/migrations":          (PLATFORM, "catalog:write"),
    "GET /v1/prices":                                               (TENANT, "catalog:read"),
    "POST /v1/prices":                                              (PLATFORM, "catalog:write"),
    "GET /v1/prices/{price}":                                       (TENANT, "catalog:read"),
    "PATCH /v1/prices/{price}":                                     (PLATFORM, "catalog:write"),
    # -- coupons and promotion codes: platform only (a tenant must not discount itself); a checkout form
    #    may ask whether a code would apply for its own tenant (validate redeems nothing)
    "GET /v1/coupons":                                              (PLATFORM, "catalog:read"),
    "POST /v1/coupons":                                             (PLATFORM, "catalog:write"),
    "GET /v1/coupons/{coupon_id}":                                  (PLATFORM, "catalog:read"),
    "PATCH /v1/coupons/{coupon_id}":                                (PLATFORM, "catalog:write"),
    "DELETE /v1/coupons/{coupon_id}":                               (PLATFORM, "catalog:write"),
    "GET /v1/promotion_codes":                                      (PLATFORM, "catalog:read"),
    "POST /v1/promotion_codes":                                     (PLATFORM, "catalog:write"),
    "POST /v1/promotion_codes/validate":                            (TENANT, "catalog:read"),
    "GET /v1/promotion_codes/{promotion_code}":                     (PLATFORM, "catalog:read"),
    "PATCH /v1/promotion_codes/{promotion_code}":                   (PLATFORM, "catalog:write"),
    # -- tax rates: the platform's to set; shared data a tenant may read (they appear on its invoices) -------
    "GET /v1/tax_rates":                                            (TENANT, "billing:read"),
    "POST /v1/tax_rates":                                           (PLATFORM, "billing:write"),
    "GET /v1/tax_rates/{rate_id}":                                  (TENANT, "billing:read"),
    "PATCH /v1/tax_rates/{rate_id}":                                (PLATFORM, "billing:write"),
    # -- customers: a tenant reads itself; creating tenants and changing billing details (tax ids decide
    #    the tax) is the platform's
    "GET /v1/customers":                                            (TENANT, "customers:read"),
    "POST /v1/customers":                                           (PLATFORM, "customers:write"),
    "GET /v1/customers/{customer_id}":                              (TENANT, "customers:read"),
    "PATCH /v1/customers/{customer_id}":                            (PLATFORM, "customers:write"),
    "GET /v1/customers/{customer_id}/access":                       (TENANT, "customers:read"),
    # -- members, invites, SCIM tokens, SSO connections: the tenant's own people and IdP ------------------
    "GET /v1/customers/{customer_id}/members":                      (TENANT, "customers:read"),
    "POST /v1/customers/{customer_id}/members":                     (TENANT, "customers:write"),
    "PATCH /v1/customers/{customer_id}/members/{member_id}":        (TENANT, "customers:write"),
    "DELETE /v1/customers/{customer_id}/members/{member_id}":       (TENANT, "customers:write"),
    "GET /v1/customers/{customer_id}/invites":                      (TENANT, "members:read"),
    "POST /v1/customers/{customer_id}/invites":                     (TENANT, "members:write"),
    "POST /v1/invites/accept":                                      (TENANT, "members:write"),
    "GET /v1/customers/{customer_id}/scim_tokens":                  (TENANT, "customers:write"),
    "POST /v1/customers/{customer_id}/scim_tokens":                 (TENANT, "customers:write"),
    "DELETE /v1/customers/{customer_id}/scim_tokens/{token_id}":    (TENANT, "customers:write"),
    # -- dunning (gateway/dunning): campaigns are the vendor's; a tenant reads its own invoices' dunning ----
    "GET /v1/dunning_campaigns":                                    (PLATFORM, "billing:read"),
    "POST /v1/dunning_campaigns":                                   (PLATFORM, "billing:write"),
    "GET /v1/dunning_campaigns/{campaign_id}":                      (PLATFORM, "billing:read"),
    "PATCH /v1/dunning_campaigns/{campaign_id}":                    (PLATFORM, "billing:write"),
    "GET /v1/dunning_overrides":                                    (PLATFORM, "billing:read"),
    "POST /v1/dunning_overrides":                                   (PLATFORM, "billing:write"),
    "DELETE /v1/dunning_overrides/{override_id}":                   (PLATFORM, "billing:write"),
    "GET /v1/dunning_runs":                                         (TENANT, "billing:read"),
    "GET /v1/invoices/{invoice_id}/dunning":                        (TENANT, "billing:read"),
    "GET /v1/sso/connections":                                      (TENANT, "sso:read"),
    "POST /v1/sso/connections":                                     (TENANT, "sso:write"),
    "GET /v1/sso/connections/{connection_id}":                      (TENANT, "sso:read"),
    "PATCH /v1/sso/connections/{connection_id}":                    (TENANT, "sso:write"),
    "DELETE /v1/sso/connections/{connection_id}":                   (TENANT, "sso:write"),
    "POST /v1/sso/connections/{connection_id}/verify_domain":      (PLATFORM, "sso:write"),
    # -- credit and customer discounts: platform only --------------------------------------------------------
    "GET /v1/customers/{customer_id}/balance":                      (TENANT, "billing:read"),
    "POST /v1/customers/{customer_id}/credit_grants":               (PLATFORM, "billing:write"),
    "POST /v1/customers/{customer_id}/discounts":                   (PLATFORM, "billing:write"),
    # -- subscriptions: a tenant reads its own (and may preview a change); changing them is the platform's --
    "GET /v1/subscriptions":                                        (TENANT, "subscriptions:read"),
    "POST /v1/subscriptions":                                       (PLATFORM, "subscriptions:write"),
    "GET /v1/subscriptions/{subscription_id}":                      (TENANT, "subscriptions:read"),
    "PATCH /v1/subscriptions/{subscription_id}":                    (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/addons":              (PLATFORM, "subscriptions:write"),
    "DELETE /v1/subscriptions/{subscription_id}/addons/{addon_id}": (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/cancel":              (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/undo_cancel":         (PLATFORM, "subscriptions:write"),
    "GET /v1/subscriptions/{subscription_id}/discounts":            (TENANT, "subscriptions:read"),
    "POST /v1/subscriptions/{subscription_id}/discounts":           (PLATFORM, "subscriptions:write"),
    "DELETE /v1/subscriptions/{subscription_id}/discounts/{discount_id}": (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/pause":               (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/extend_trial":        (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/resume":              (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/plan_change":         (PLATFORM, "subscriptions:write"),
    "POST /v1/subscriptions/{subscription_id}/preview_change":      (TENANT, "billing:read"),
    "POST /v1/subscriptions/{subscription_id}/quantity":            (PLATFORM, "subscriptions:write"),
    "DELETE /v1/subscriptions/{subscription_id}/scheduled_change":  (PLATFORM, "subscriptions:write"),
    "GET /v1/subscriptions/{subscription_id}/upcoming_invoice":     (TENANT, "billing:read"),
    "GET /v1/subscriptions/{subscription_id}/usage":                (TENANT, "subscriptions:read"),
    "POST /v1/subscriptions/{subscription_id}/usage":               (PLATFORM, "subscriptions:write"),
    # -- invoices, invoice items, credit notes: a tenant reads its own; billing is the platform's ----------
    "GET /v1/invoices":                                             (TENANT, "billing:read"),
    "POST /v1/invoices":                                            (PLATFORM, "billing:write"),
    "GET /v1/invoices/{invoice_id}":                                (TENANT, "billing:read"),
    "DELETE /v1/invoices/{invoice_id}":                             (PLATFORM, "billing:write"),
    "GET /v1/invoices/{invoice_id}/html":                           (TENANT, "billing:read"),
    "GET /v1/invoices/{invoice_id}/pdf":                            (TENANT, "billing:read"),
    "POST /v1/invoices/{invoice_id}/finalize":                      (PLATFORM, "billing:write"),
    "POST /v1/invoices/{invoice_id}/pay":                           (PLATFORM, "billing:write"),
    # -- payments: provider accounts and collecting money are the platform's; a tenant reads its own methods
    #    and payments; providers post their webhooks (signature checked by the adapter)
    "GET /v1/payment_provider_accounts":                            (PLATFORM, "payments:read"),
    "POST /v1/payment_provider_accounts":                           (PLATFORM, "payments:write"),
    "GET /v1/payment_provider_accounts/{account_id}":               (PLATFORM, "payments:read"),
    "POST /v1/payment_providers/{account_id}/webhooks":             (ANYONE, None),
    "GET /v1/customers/{customer_id}/payment_methods":              (TENANT, "payments:read"),
    "GET /v1/customers/{customer_id}/payment_methods/{payment_method_id}": (TENANT, "payments:read"),
    "PATCH /v1/customers/{customer_id}/payment_methods/{payment_method_id}": (PLATFORM, "payments:write"),
    "DELETE /v1/customers/{customer_id}/payment_methods/{payment_method_id}": (PLATFORM, "payments:write"),
    "POST /v1/customers/{customer_id}/payment_methods/{payment_method_id}/default":
                                                                    (PLATFORM, "payments:write"),
    "POST /v1/customers/{customer_id}/setup_sessions":              (PLATFORM, "payments:write"),
    "GET /v1/payments":                                             (TENANT, "payments:read"),
    "GET /v1/payments/{payment_id}":                                (TENANT, "payments:read"),
    "POST /v1/payments/{payment_id}/refund":                        (PLATFORM, "payments:write"),
    "POST /v1/invoices/{invoice_id}/void":                          (PLATFORM, "billing:write"),
    "POST /v1/invoices/{invoice_id}/mark_uncollectible":            (PLATFORM, "billing:write"),
    "GET /v1/invoice_items":                                        (TENANT, "billing:read"),
    "POST /v1/invoice_items":                                       (PLATFORM, "billing:write"),
    "GET /v1/invoice_items/{item_id}":                              (TENANT, "billing:read"),
    "DELETE /v1/invoice_items/{item_id}":                           (PLATFORM, "billing:write"),
    "GET /v1/credit_notes":                                         (TENANT, "billing:read"),
    "POST /v1/credit_notes":                                        (PLATFORM, "billing:write"),
    "GET /v1/credit_notes/{credit_note_id}":                        (TENANT, "billing:read"),
    "GET /v1/credit_notes/{credit_note_id}/html":                   (TENANT, "billing:read"),
    "GET /v1/credit_notes/{credit_note_id}/pdf":                    (TENANT, "billing:read"),
    # -- metering: meters are shared definitions (tenants may read them); usage events are reported by the
    #    platform, or by a tenant key for its own customer only (other subjects are unknown to it); voiding
    #    (a correction of what is billed) is the platform's; a tenant reads its own usage
    "POST /v1/meters":                                              (PLATFORM, "meters:write"),
    "GET /v1/meters":                                               (TENANT, "meters:read"),
    "GET /v1/meters/{meter}":                                       (TENANT, "meters:read"),
    "PATCH /v1/meters/{meter}":                                     (PLATFORM, "meters:write"),
    "DELETE /v1/meters/{meter}":                                    (PLATFORM, "meters:write"),
    "POST /v1/usage_events":                                        (TENANT, "usage:write"),
    "POST /v1/usage_events/{event_id}/void":                        (PLATFORM, "usage:write"),
    "GET /v1/usage":                                                (TENANT, "usage:read"),
    # -- test clocks: platform only --------------------------------------------------------------------------
    "GET /v1/test_clocks":                                          (PLATFORM, "test_clocks:read"),
    "POST /v1/test_clocks":                                         (PLATFORM, "test_clocks:write"),
    "GET /v1/test_clocks/{clock_id}":                               (PLATFORM, "test_clocks:read"),
    "DELETE /v1/test_clocks/{clock_id}":                            (PLATFORM, "test_clocks:write"),
    "POST /v1/test_clocks/{clock_id}/advance":                      (PLATFORM, "test_clocks:write"),
    "POST /v1/test_clocks/{clock_id}/customers":                    (PLATFORM, "test_clocks:write"),
    # -- deciding: what an app asks per request, for its own tenant -----------------------------------------
    "POST /v1/check":                                               (TENANT, "check:read"),
    "POST /v1/check/batch":                                         (TENANT, "check:read"),
    "POST /v1/check/release":                                       (TENANT, "check:write"),
    "GET /v1/entitlements/{customer}":                              (TENANT, "entitlements:read"),
    "GET /v1/entitlements/{customer}/decisions":                    (TENANT, "entitlements:read"),
    "GET /v1/changes":                                              (TENANT, "entitlements:read"),
    "POST /v1/tokens":                                              (TENANT, "tokens:write"),
    "POST /ofrep/v1/evaluate/flags":                                (TENANT, "entitlements:read"),
    "POST /ofrep/v1/evaluate/flags/{key}":                          (TENANT, "entitlements:read"),
    # -- metered allowances: credits are sold (platform), a tenant reads its own; reconciliation -------------
    "POST /v1/customers/{customer_id}/usage_credits":               (PLATFORM, "billing:write"),
    "GET /v1/customers/{customer_id}/usage_credits":                (TENANT, "billing:read"),
    "POST /v1/usage_reconciliation":                                (PLATFORM, "entitlements:write"),
    "GET /v1/usage_reconciliation":                                 (TENANT, "entitlements:read"),
    # -- policies and metrics: platform only ----------------------------------------------------------------
    "GET /v1/policies":                                             (PLATFORM, "policies:read"),
    "POST /v1/policies/edits":                                      (PLATFORM, "policies:write"),
    "POST /v1/policies/replace":                                    (PLATFORM, "policies:write"),
    "GET /v1/policies/versions":                                    (PLATFORM, "policies:read"),
    "GET /v1/policies/versions/{version}":                          (PLATFORM, "policies:read"),
    "POST /v1/policies/versions/{version}/restore":                 (PLATFORM, "policies:write"),
    "POST /v1/policies/what_if":                                    (PLATFORM, "policies:read"),
    "GET /v1/metrics":                                              (PLATFORM, "metrics:read"),
    "GET /v1/metrics/cohorts":                                      (PLATFORM, "metrics:read"),
    "GET /v1/metrics/mrr":                                          (PLATFORM, "metrics:read"),
    # -- events, audit log, webhooks, privacy: a tenant sees and subscribes to its own; erasing is the
    #    platform's (it cuts across tenants a user belongs to)
    "GET /v1/events":                                               (TENANT, "events:read"),
    "GET /v1/audit_log":                                            (TENANT, "audit:read"),
    "GET /v1/webhook_endpoints":                                    (TENANT, "webhooks:read"),
    "POST /v1/webhook_endpoints":                                   (TENANT, "webhooks:write"),
    "GET /v1/webhook_endpoints/{endpoint_id}":                      (TENANT, "webhooks:read"),
    "PATCH /v1/webhook_endpoints/{endpoint_id}":                    (TENANT, "webhooks:write"),
    "DELETE /v1/webhook_endpoints/{endpoint_id}":                   (TENANT, "webhooks:write"),
    "GET /v1/webhook_endpoints/{endpoint_id}/deliveries":           (TENANT, "webhooks:read"),
    # -- e-mail to customers: a tenant reports its bounces, brands and previews its own mails; the platform
    #    key's suppressions and branding apply to every tenant.
    "GET /v1/email_suppressions":                                   (TENANT, "email:read"),
    "POST /v1/email_suppressions":                                  (TENANT, "email:write"),
    "DELETE /v1/email_suppressions/{address}":                      (TENANT, "email:write"),
    "GET /v1/email_branding":                                       (TENANT, "email:read"),
    "PUT /v1/email_branding":                                       (TENANT, "email:write"),
    "GET /v1/customers/{customer_id}/email_preferences":            (TENANT, "email:read"),
    "PUT /v1/customers/{customer_id}/email_preferences":            (TENANT, "email:write"),
    "GET /v1/email_templates":                                      (TENANT, "email:read"),
    "GET /v1/email_templates/{name}/preview":                       (TENANT, "email:read"),
    "GET /v1/email_messages":                                       (TENANT, "email:read"),
    "GET /v1/email_messages/{message_id}":                          (TENANT, "email:read"),
    "POST /v1/email_messages/{message_id}/resend":                  (TENANT, "email:write"),
    "POST /v1/webhook_endpoints/{endpoint_id}/replay":               (TENANT, "webhooks:write"),
    "POST /v1/webhook_deliveries/{delivery_id}/resend":              (TENANT, "webhooks:write"),
    "GET /v1/users/{user_id}/export":                               (TENANT, "privacy:read"),
    "POST /v1/users/{user_id}/erase":                               (PLATFORM, "privacy:write"),
    # -- forward auth: a reverse proxy asks for an end user, whose access token is the credential; every
    #    method, since Envoy forwards the original one
    "* /v1/authz/forward":                                          (END_USER, None),
    "* /v1/authz/forward/{path}":                                   (END_USER, None),
    # -- SCIM 2.0: the tenant's IdP with its SCIM token -----------------------------------------------------
    "GET /scim/v2/ServiceProviderConfig":                           (SCIM, None),
    "GET /scim/v2/ResourceTypes":                                   (SCIM, None),
    "GET /scim/v2/ResourceTypes/{type_id}":                         (SCIM, None),
    "GET /scim/v2/Schemas":                                         (SCIM, None),
    "GET /scim/v2/Schemas/{schema_id}":                             (SCIM, None),
    "GET /scim/v2/Users":                                           (SCIM, None),
    "POST /scim/v2/Users":                                          (SCIM, None),
    "POST /scim/v2/Users/.search":                                  (SCIM, None),
    "GET /scim/v2/Users/{user_id}":                                 (SCIM, None),
    "PUT /scim/v2/Users/{user_id}":                                 (SCIM, None),
    "PATCH /scim/v2/Users/{user_id}":                               (SCIM, None),
    "DELETE /scim/v2/Users/{user_id}":                              (SCIM, None),
    "GET /scim/v2/Groups":                                          (SCIM, None),
    "POST /scim/v2/Groups":                                         (SCIM, None),
    "POST /scim/v2/Groups/.search":                                 (SCIM, None),
    "GET /scim/v2/Groups/{group_id}":                               (SCIM, None),
    "PUT /scim/v2/Groups/{group_id}":                               (SCIM, None),
    "PATCH /scim/v2/Groups/{group_id}":                             (SCIM, None),
    "DELETE /scim/v2/Groups/{group_id}":                            (SCIM, None),
    "POST /scim/v2/.search":                                        (SCIM, None),
    "* /scim/v2/{unknown}":                                         (SCIM, None),
    # -- SSO in the browser: signing in is open to anyone; the rest needs the end user's session -----------
    "GET /sso/login":                                               (ANYONE, None),
    "GET /sso/callback":                                            (ANYONE, None),
    "GET /sso/logged-out":                                          (ANYONE, None),
    "GET /sso/me":                                                  (END_USER, None),
    # -- staff sign-in (gateway/admin): a one-time login link is the credential
    "POST /v1/staff_sessions":                                      (ANYONE, None),
    "GET /admin/login/{token}":                                     (ANYONE, None),
    # sign-out: the staff session token (Bearer, or the tg_staff cookie) is the credential it revokes
    "DELETE /v1/staff_sessions/current":                            (ANYONE, None),
    "POST /admin/logout":                                           (ANYONE, None),
    # staff SSO (gateway/admin/pages_sign_in.py): the platform IdP's verified e-mail of an active staff member
    "GET /admin/sign-in":                                           (ANYONE, None),
    "GET /admin/sso":                                               (ANYONE, None),
    "GET /admin/sso/callback":                                      (ANYONE, None),
    # staff management (gateway/admin/http.py): `staff:write` is the staff policy's `staff, manage`, owners
    # only; admins (and any owner) may list the staff
    "GET /v1/staff":                                                (PLATFORM, "staff:read"),
    "POST /v1/staff":                                               (PLATFORM, "staff:write"),
    "PATCH /v1/staff/{staff_id}":                                   (PLATFORM, "staff:write"),
    "POST /v1/staff/{staff_id}/login_link":                         (PLATFORM, "staff:write"),
    # the console's customer timeline (gateway/admin/timeline.py): the event log, one customer
    "GET /v1/customers/{customer_id}/timeline":                     (PLATFORM, "events:read"),
    # -- the operator console (gateway/admin/pages.py): the staff scope of the /v1 operation each mirrors
    "GET /admin":                                                   (STAFF_PAGE, "metrics:read"),
    "GET /admin/dashboard":                                         (STAFF_PAGE, "metrics:read"),
    "GET /admin/dashboard/data":                                    (STAFF_PAGE, "metrics:read"),
    "GET /admin/dashboard/csv/{chart}":                             (STAFF_PAGE, "metrics:read"),
    "GET /admin/webhooks":                                          (STAFF_PAGE, "webhooks:read"),
    "GET /admin/webhooks/{endpoint_id}":                            (STAFF_PAGE, "webhooks:read"),
    "POST /admin/webhooks/deliveries/{delivery_id}/resend":         (STAFF_PAGE, "webhooks:write"),
    "POST /admin/webhooks/{endpoint_id}/replay":                    (STAFF_PAGE, "webhooks:write"),
    "GET /admin/catalog/grid":                                      (STAFF_PAGE, "catalog:read"),
    "GET /admin/catalog/grid/{plan}":                               (STAFF_PAGE, "catalog:write"),
    "POST /admin/catalog/grid/{plan}":                              (STAFF_PAGE, "catalog:write"),
    # the console's catalog overview and new prices (gateway/admin/pages_prices.py): the scopes of /v1/prices
    "GET /admin/catalog":                                           (STAFF_PAGE, "catalog:read"),
    "POST /admin/catalog/prices":                                   (STAFF_PAGE, "catalog:write"),
    # the console's coupons and promotion codes (gateway/admin/pages_coupons.py): the scopes of /v1/coupons
    "GET /admin/coupons":                                           (STAFF_PAGE, "catalog:read"),
    "POST /admin/coupons":                                          (STAFF_PAGE, "catalog:write"),
    "POST /admin/coupons/promotion_codes":                          (STAFF_PAGE, "catalog:write"),
    "POST /admin/coupons/{coupon_id}/deactivate":                   (STAFF_PAGE, "catalog:write"),
    "GET /admin/catalog/plans/{plan}/versions":                     (STAFF_PAGE, "catalog:read"),
    "POST /admin/catalog/plans/{plan}/versions":                    (STAFF_PAGE, "catalog:write"),
    # the console's operations pages (gateway/admin/pages_operations.py)
    "GET /admin/audit":                                             (STAFF_PAGE, "audit:read"),
    "GET /admin/jobs":                                              (STAFF_PAGE, "operations:read"),
    # the console's staff page (gateway/admin/pages_staff.py): the scopes of /v1/staff
    "GET /admin/staff":                                             (STAFF_PAGE, "staff:read"),
    "POST /admin/staff":                                            (STAFF_PAGE, "staff:write"),
    "POST /admin/staff/{staff_id}":                                 (STAFF_PAGE, "staff:write"),
    "POST /admin/staff/{staff_id}/login_link":                      (STAFF_PAGE, "staff:write"),
    # the console's policy editor (gateway/admin/pages_policies.py): the scopes of /v1/policies
    "GET /admin/policies":                                          (STAFF_PAGE, "policies:read"),
    "POST /admin/policies/draft":                                   (STAFF_PAGE, "policies:read"),
    "POST /admin/policies/publish":                                 (STAFF_PAGE, "policies:write"),
    "POST /admin/policies/versions/{version}/restore":              (STAFF_PAGE, "policies:write"),
    # the console's customer pages (gateway/admin/pages_customers.py): the scopes of the /v1 operations
    "GET /admin/customers":                                         (STAFF_PAGE, "customers:read"),
    "GET /admin/customers/{customer_id}":                           (STAFF_PAGE, "customers:read"),
    "POST /admin/customers/{customer_id}/credit":                   (STAFF_PAGE, "billing:write"),
    "GET /admin/customers/{customer_id}/subscriptions/{subscription_id}/plan_change":
                                                                    (STAFF_PAGE, "subscriptions:write"),
    "POST /admin/customers/{customer_id}/subscriptions/{subscription_id}/plan_change":
                                                                    (STAFF_PAGE, "subscriptions:write"),
    "POST /admin/customers/{customer_id}/portal_session":           (STAFF_PAGE, "portal:write"),
    "POST /admin/customers/{customer_id}/emails/{message_id}/resend":
        (STAFF_PAGE, "email:write"),
    "POST /admin/customers/{customer_id}/payments/{payment_id}/refund":
        (STAFF_PAGE, "payments:write"),
    "POST /admin/customers/{customer_id}/invoices/{invoice_id}/credit_note":
                                                                    (STAFF_PAGE, "billing:write"),
    "POST /admin/customers/{customer_id}/subscriptions/{subscription_id}/cancel":
        (STAFF_PAGE, "subscriptions:write"),
    "POST /admin/customers/{customer_id}/subscriptions/{subscription_id}/pause":
        (STAFF_PAGE, "subscriptions:write"),
    "POST /admin/customers/{customer_id}/subscriptions/{subscription_id}/extend_trial":
        (STAFF_PAGE, "subscriptions:write"),
    "GET /sso/session":                                             (END_USER, None),
    "POST /sso/refresh":                                            (END_USER, None),
    "POST /sso/logout":                                             (END_USER, None),
    # -- customer portal (gateway/portal): configuration is the platform's; the app asks for a portal link
    #    for its own customer; the link is the credential, then the portal's own session cookie
    "GET /v1/portal_configuration":                                 (PLATFORM, "portal:read"),
    "PUT /v1/portal_configuration":                                 (PLATFORM, "portal:write"),
    "POST /v1/portal_sessions":                                     (TENANT, "portal:write"),
    "GET /portal/session/{token}":                                  (ANYONE, None),
    # a member's SSO session (cookie `tg_session`) whose role manages billing (asked of the engine)
    "GET /portal/sso":                                              (END_USER, None),
    # sign-in by a code e-mailed to the billing address (gateway/portal/login_pages.py): the code is the
    # credential, checked by the pages; the same answer for any address, throttled per address
    "GET /portal/login":                                            (ANYONE, None),
    "POST /portal/login":                                           (ANYONE, None),
    "POST /portal/login/verify":                                    (ANYONE, None),
    "POST /portal/login/choose":                                    (ANYONE, None),
    "GET /portal/login/verify":                                     (ANYONE, None),
    "GET /portal/login/choose":                                     (ANYONE, None),
    # the portal's pages: the customer's portal session (cookie `tg_portal`), checked by the pages
    "GET /portal":                                                  (END_USER, None),
    "GET /portal/cancel":                                           (END_USER, None),
    "POST /portal/cancel":                                          (END_USER, None),
    "POST /portal/undo_cancel":                                     (END_USER, None),
    "GET /portal/plan":                                             (END_USER, None),
    "POST /portal/plan":                                            (END_USER, None),
    "GET /portal/seats":                                            (END_USER, None),
    "POST /portal/seats":                                           (END_USER, None),
    "GET /portal/addons":                                           (END_USER, None),
    "POST /portal/addons":                                          (END_USER, None),
    "POST /portal/promotion_code":                                  (END_USER, None),
    "POST /portal/pause":                                           (END_USER, None),
    "POST /portal/resume":                                          (END_USER, None),
    "GET /portal/invoices/{invoice_id}/pdf":                        (END_USER, None),
    "POST /portal/invoices/{invoice_id}/pay":                       (END_USER, None),
    "GET /portal/invoices/{invoice_id}/payment_return":             (END_USER, None),
    "GET /portal/billing_details":                                  (END_USER, None),
    "POST /portal/billing_details":                                 (END_USER, None),
    "POST /portal/payment_methods":                                 (END_USER, None),
    "POST /portal/payment_methods/{method_id}/default":             (END_USER, None),
    # -- public documents ------------------------------------------------------------------------------------
    "GET /.well-known/jwks.json":                                   (ANYONE, None),
    "GET /health":                                                  (ANYONE, None),
    "GET /health/live":                                             (ANYONE, None),
    "GET /health/ready":                                            (ANYONE, None),
    # -- operations: Prometheus scrapes with a platform key (or metrics_port, off the service port) -------
    "GET /metrics":                                                 (PLATFORM, "operations:read"),
    # saq's job dashboard (gateway/worker/dashboard.py): looking is read, retrying or aborting a job write
    "GET /saq":                                                     (PLATFORM, "operations:read"),
    "GET /saq/health":                                              (PLATFORM, "operations:read"),
    "GET /saq/queues/{queue_id}":                                   (PLATFORM, "operations:read"),
    "GET /saq/queues/{queue_id}/jobs/{job_id}":                     (PLATFORM, "operations:read"),
    "GET /saq/api/queues":                                          (PLATFORM, "operations:read"),
    "GET /saq/api/queues/{queue_id}":                               (PLATFORM, "operations:read"),
    "GET /saq/api/queues/{queue_id}/jobs/{job_id}":                 (PLATFORM, "operations:read"),
    "POST /saq/api/queues/{queue_id}/jobs/{job_id}/retry":          (PLATFORM, "operations:write"),
    "POST /saq/api/queues/{queue_id}/jobs/{job_id}/abort":          (PLATFORM, "operations:write"),
    "GET /saq/static/{file_path}":                                  (ANYONE, None),
    "HEAD /saq/static/{file_path}":                                 (ANYONE, None),
    "GET /docs":                                                    (ANYONE, None),
    "GET /docs/openapi.json":                                       (ANYONE, None),
    "GET /docs/scalar":                                             (ANYONE, None),
    "GET /docs/swagger":                                            (ANYONE, None),
    "GET /docs/oauth2-redirect.html":                               (ANYONE, None),
    "GET /docs/{path}":                                             (ANYONE, None),
    "GET /docs/assets/{file_path}":                                 (ANYONE, None),
    # -- the sandbox payment provider mounted in embedded mode (gateway/sandbox/README.md): another service
    #    sharing the process, outside the OpenAPI document. It authenticates its API callers with its own
    #    account keys; its hosted pages (setup, 3-D Secure) are for the paying customer's browser.
    "* /sandbox":                                                   (ANYONE, None),
    "HEAD /docs/assets/{file_path}":                                (ANYONE, None),
    # -- the pages' own assets (gateway/webui): htmx, Pico, uPlot and ours, hashed names, cached forever ---
    "GET /static/{path}":                                           (ANYONE, None),
    # -- price experiments and hosted checkout (gateway/portal): the vendor's; the checkout page itself is
    #    opened by anyone holding its one-time link
    "GET /v1/experiments":                                          (PLATFORM, "catalog:read"),
    "POST /v1/experiments":                                         (PLATFORM, "catalog:write"),
    "GET /v1/experiments/{experiment_id}":                          (PLATFORM, "catalog:read"),
    "POST /v1/experiments/{experiment_id}/start":                   (PLATFORM, "catalog:write"),
    "POST /v1/experiments/{experiment_id}/stop":                    (PLATFORM, "catalog:write"),
    "POST /v1/experiments/{experiment_id}/assignments":             (PLATFORM, "catalog:read"),
    "GET /v1/experiments/{experiment_id}/results":                  (PLATFORM, "catalog:read"),
    "POST /v1/experiments/{experiment_id}/promote":                 (PLATFORM, "catalog:write"),
    "POST /v1/checkout_sessions":                                   (PLATFORM, "subscriptions:write"),
    "GET /v1/checkout_sessions/{session_id}":                       (PLATFORM, "subscriptions:read"),
    # pages (gateway/portal/pricing_pages.py): the pricing table is public, the checkout link is its own
    # credential (random, hashed, single use); experiment results are for staff who may read the catalog
    "GET /pricing/{product}":                                       (ANYONE, None),
    "POST /pricing/{product}/checkout":                             (ANYONE, None),
    "GET /pricing/{product}/thanks":                                (ANYONE, None),
    "GET /checkout/{token}":                                        (ANYONE, None),
    "POST /checkout/{token}":                                       (ANYONE, None),
    "GET /experiments/{experiment_id}":                             (STAFF_PAGE, "catalog:read"),
}
# fmt: on

MATRIX: Mapping[tuple[str, str], Access] = {
    (row.split(" ", 1)[0], row.split(" ", 1)[1]): Access(who, scope) for row, (who, scope) in _TABLE.items()
}

# Litestar answers OPTIONS on every path by itself (the methods the path has; no handler code runs).
AUTOMATIC_OPTIONS = Access(ANYONE)


def access_for(method: str, path: str) -> Access | None:
    """The row for `method path` (a `*` row covers every method of a path), or None: not permitted."""
    return MATRIX.get((method, path)) or MATRIX.get(("*", path))


def caller_kind(principal: Principal) -> Caller:
    return Caller.PLATFORM_KEY if principal.tenant_id is None else Caller.TENANT_KEY


def refusal(access: Access, principal: Principal) -> Forbidden | None:
    """None when `principal` may call an operation with this row, else why not: the kind of key first
    (a tenant key on a platform operation), then the scope."""
    if caller_kind(principal) not in access.callers:
        return Forbidden(
            "this operation needs a platform API key, not a tenant-scoped one", code="platform_key_required"
        )
    if access.scope and not principal.allows(access.scope):
        return Forbidden(
            f"this API key lacks the `{access.scope}` scope",
            code="missing_scope",
            required_scope=access.scope,
        )
    return None


def not_in_matrix(method: str, path: str) -> Forbidden:
    return Forbidden(
        f"{method} {path} is not in the permission matrix, so nobody may call it",
        code="not_in_permission_matrix",
    )
