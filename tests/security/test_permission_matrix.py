"""Issue 9, hole 1: one permission matrix (gateway/web/permissions.py), enforced by one guard.

A tenant key of tenant A walks every operation of the OpenAPI document, with the real ids of tenant A and
of tenant B in the path (and in the body where the operation names a customer): whatever the matrix keeps
for platform keys is a 403 `platform_key_required` whoever it names, whatever names tenant B is a 404,
no answer carries an id of tenant B, and none of those refusals changes a row. What the matrix grants a
tenant key then works on tenant A's own ids. Then each request of the issue, one by one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select

from gateway.all_models import Base
from gateway.config import Settings
from gateway.db.session import Database
from gateway.kernel.clock import FrozenClock
from gateway.web.permissions import MATRIX, Access, Caller, access_for
from tests.conftest import Api
from tests.entitlements.test_check_api import synced

METHODS = ("get", "post", "put", "patch", "delete")

# Which id a path parameter takes (by name); tenant-owned ones differ between A and B.
PARAMETER_IDS = {
    "customer_id": "customer",
    "customer": "customer",
    "member_id": "member",
    "user_id": "user",
    "token_id": "scim_token",
    "subscription_id": "subscription",
    "addon_id": "addon",
    "discount_id": "discount",
    "invoice_id": "invoice",
    "item_id": "invoice_item",
    "credit_note_id": "credit_note",
    "key_id": "api_key",
    "endpoint_id": "webhook",
    "delivery_id": "webhook_delivery",
    "connection_id": "sso_connection",
    # shared by every tenant (the platform's)
    "coupon_id": "coupon",
    "promotion_code": "promotion_code",
    "price": "price",
    "plan": "plan",
    "product_id": "product",
    "feature": "feature",
    "rate_id": "tax_rate",
    "clock_id": "test_clock",
    "account_id": "payment_provider_account",
    # payments: each side has its own method and payment (payment_rows); a tenant key reads its own only
    "payment_method_id": "payment_method",
    "payment_id": "payment",
    "version": "policy_version",
    "key": "flag",
    "meter": "meter",
    "event_id": "usage_event",
    "address": "email_address",
    "name": "email_template",
    "campaign_id": "dunning_campaign",
    "override_id": "dunning_override",
    "message_id": "email_message",
    "experiment_id": "experiment",
    "session_id": "checkout_session",
    "staff_id": "staff_member",
}
TENANT_OWNED = {
    "customer",
    "member",
    "user",
    "scim_token",
    "subscription",
    "addon",
    "discount",
    "invoice",
    "invoice_item",
    "credit_note",
    "api_key",
    "webhook",
    "webhook_delivery",
    "sso_connection",
    "invite_token",
    "payment_method",
    "payment",
    "email_message",
}


@dataclass
class Side:
    """One tenant's real ids (and the platform's shared ones, the same on both sides)."""

    name: str
    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, item: str) -> str:
        return self.ids[item]


def body_for(operation: str, side: Side, n: int) -> Any:
    """A body a real caller would send to `operation`, naming `side`'s ids; `n` keeps names unique."""
    c, mail = side["customer"], f"user{n}@{side.name}.example"
    bodies: dict[str, Any] = {
        "POST /v1/api_keys": {"name": f"k{n}", "scopes": ["check:read"], "customer": c},
        "POST /v1/api_keys/{key_id}/revoke": {},
        "POST /v1/products": {"name": f"Product {n}"},
        "PATCH /v1/products/{product_id}": {"name": "Hacked"},
        "POST /v1/features": {"key": f"feature_{n}", "name": "Feature", "kind": "boolean"},
        "POST /v1/plans": {"key": f"plan_{n}", "name": "Plan", "product": side["product"]},
        "PATCH /v1/plans/{plan}": {"name": "Hacked"},
        "POST /v1/plans/{plan}/versions": {"grants": [{"feature": "projects", "limit": 1000}]},
        "POST /v1/plans/{plan}/versions/{version}/migrations": {"dry_run": True},
        "POST /v1/prices": {
            "plan": "basic",
            "currency_options": {"USD": {"unit_amount": 1}},
            "interval": "month",
            "model": "flat",
        },
        "PATCH /v1/prices/{price}": {"active": False},
        "POST /v1/coupons": {"id": f"FREE{n}", "percent_off": "100", "duration": "forever"},
        "PATCH /v1/coupons/{coupon_id}": {"name": "Hacked"},
        "POST /v1/promotion_codes": {"coupon": side["coupon"], "code": f"MINE{n}", "customer": c},
        "PATCH /v1/promotion_codes/{promotion_code}": {"active": False},
        "POST /v1/promotion_codes/validate": {"code": "LAUNCH", "customer": c},
        "POST /v1/tax_rates": {"country": "US", "display_name": "Zero", "percent": "0"},
        "PATCH /v1/tax_rates/{rate_id}": {"active": False},
        "POST /v1/customers": {"name": f"Customer {n}", "currency": "USD"},
        "PATCH /v1/customers/{customer_id}": {"name": "Hacked"},
        "POST /v1/customers/{customer_id}/members": {"email": mail, "role": "editor"},
        "PATCH /v1/customers/{customer_id}/members/{member_id}": {"role": "viewer"},
        "POST /v1/customers/{customer_id}/invites": {"email": mail, "role": "editor"},
        "POST /v1/invites/accept": {"token": side["invite_token"], "name": "Invited"},
        "POST /v1/customers/{customer_id}/scim_tokens": {"name": f"idp{n}"},
        "POST /v1/sso/connections": {
            "name": f"IdP {n}",
            "customer": c,
            "issuer": f"https://idp{n}.{side.name}.example",
            "client_id": "tiergate",
            "client_secret": "s3cret",
            "allowed_domains": [f"team{n}.{side.name}.example"],
        },
        "PATCH /v1/sso/connections/{connection_id}": {"name": "Hacked"},
        "POST /v1/sso/connections/{connection_id}/verify_domain": {"domain": f"team{n}.{side.name}.example"},
        "POST /v1/customers/{customer_id}/credit_grants": {"amount": 1_000_000, "currency": "USD"},
        "POST /v1/customers/{customer_id}/usage_credits": {"feature": "api_calls", "units": 100_000},
        "POST /v1/usage_reconciliation": {"customer": c},
        "POST /v1/customers/{customer_id}/discounts": {"coupon": side["coupon"]},
        "POST /v1/subscriptions": {"customer": c, "price": "basic_monthly"},
        "PATCH /v1/subscriptions/{subscription_id}": {"collection_method": "send_invoice"},
        "POST /v1/subscriptions/{subscription_id}/addons": {"price": "extra_seats_monthly"},
        "POST /v1/subscriptions/{subscription_id}/cancel": {"at_period_end": False},
        "POST /v1/subscriptions/{subscription_id}/undo_cancel": {},
        "POST /v1/subscriptions/{subscription_id}/discounts": {"coupon": side["coupon"]},
        "POST /v1/subscriptions/{subscription_id}/pause": {},
        "POST /v1/email_messages/{message_id}/resend": {},
        "POST /v1/subscriptions/{subscription_id}/extend_trial": {"trial_end": "2026-03-01T00:00:00Z"},
        "POST /v1/subscriptions/{subscription_id}/resume": {},
        "POST /v1/subscriptions/{subscription_id}/plan_change": {"price": "basic_monthly"},
        "POST /v1/subscriptions/{subscription_id}/preview_change": {"price": "pro_monthly"},
        "POST /v1/subscriptions/{subscription_id}/quantity": {"quantity": 3},
        "POST /v1/subscriptions/{subscription_id}/usage": {"quantity": 1},
        "POST /v1/invoices": {"customer": c},
        "POST /v1/invoices/{invoice_id}/finalize": {},
        "POST /v1/invoices/{invoice_id}/pay": {"paid_out_of_band": True},
        "POST /v1/payment_provider_accounts": {
            "kind": "sandbox",
            "name": f"Sandbox {n}",
            "credentials": {"base_url": "http://127.0.0.1:9/", "api_key": "k", "webhook_secret": "s"},
        },
        "PATCH /v1/customers/{customer_id}/payment_methods/{payment_method_id}": {"priority": 0},
        "POST /v1/customers/{customer_id}/payment_methods/{payment_method_id}/default": {},
        "POST /v1/customers/{customer_id}/setup_sessions": {"return_url": "https://example.com/back"},
        "POST /v1/payments/{payment_id}/refund": {"amount": 100},
        "POST /v1/invoices/{invoice_id}/void": {},
        "POST /v1/invoices/{invoice_id}/mark_uncollectible": {},
        "POST /v1/invoice_items": {"customer": c, "amount": -100_000, "currency": "USD", "description": "x"},
        "POST /v1/credit_notes": {"invoice": side["invoice"], "amount": 100},
        "POST /v1/test_clocks": {"name": f"clock {n}"},
        "POST /v1/test_clocks/{clock_id}/advance": {"frozen_time": "2027-01-01T00:00:00Z"},
        "POST /v1/test_clocks/{clock_id}/customers": {"customer": c},
        "POST /v1/check": {"customer": c, "user": side["user"], "resource": "projects", "action": "create"},
        "POST /v1/check/batch": {"checks": [{"customer": c, "feature": "projects"}]},
        "POST /v1/check/release": {"customer": c, "feature": "projects"},
        "POST /v1/tokens": {"customer": c, "user": side["user"]},
        "POST /ofrep/v1/evaluate/flags": {"context": {"targetingKey": c}},
        "POST /ofrep/v1/evaluate/flags/{key}": {"context": {"targetingKey": c}},
        "POST /v1/policies/edits": {
            "add": [{"type": "permission", "role": "viewer", "resource": "*", "action": "*"}]
        },
        "POST /v1/policies/replace": {"rules": []},
        "POST /v1/policies/versions/{version}/restore": {},
        "POST /v1/policies/what_if": {"requests": [{"customer": c, "user": side["user"], "resource": "x"}]},
        "POST /v1/webhook_endpoints": {"url": f"https://{side.name}.example/hooks", "enabled_events": ["*"]},
        "PATCH /v1/webhook_endpoints/{endpoint_id}": {"description": "changed"},
        "POST /v1/webhook_endpoints/{endpoint_id}/replay": {"event_types": ["subscription.*"]},
        "POST /v1/webhook_deliveries/{delivery_id}/resend": {},
        "POST /v1/users/{user_id}/erase": {},
        "POST /v1/meters": {"key": f"meter_{n}", "event_type": "walked", "aggregation": "count"},
        "PATCH /v1/meters/{meter}": {"name": "Hacked"},
        "POST /v1/usage_events": {"id": f"evt{n}", "source": "walk", "type": "api_call", "subject": c},
        "POST /v1/usage_events/{event_id}/void": {"source": "walk", "subject": c},
        "POST /v1/email_suppressions": {"address": f"bounced{n}@{side.name}.example", "reason": "bounce"},
        "PUT /v1/email_branding": {"name": f"Brand {n}", "color": "#112233"},
        "PUT /v1/customers/{customer_id}/email_preferences": {"opted_out": ["usage_threshold"]},
        "PUT /v1/portal_configuration": {"actions": ["cancel"]},
        "POST /v1/portal_sessions": {"customer": c, "return_url": "https://app.example/account"},
        "POST /v1/dunning_campaigns": {
            "name": f"Campaign {n}",
            "final_action": "unpaid",
            "retry_offsets_hours": [24, 72],
        },
        "PATCH /v1/dunning_campaigns/{campaign_id}": {"name": "Hacked"},
        "POST /v1/dunning_overrides": {"campaign": side["dunning_campaign"], "customer": c},
        "POST /v1/experiments": {
            "name": f"Experiment {n}",
            "product": side["product"],
            "variants": [
                {"key": "control", "weight": 1},
                {"key": "long_trial", "weight": 1, "trial_days": 30},
            ],
        },
        "POST /v1/experiments/{experiment_id}/start": {},
        "POST /v1/experiments/{experiment_id}/stop": {},
        "POST /v1/experiments/{experiment_id}/assignments": {"visitor_key": f"visitor-{n}"},
        "POST /v1/experiments/{experiment_id}/promote": {"variant": "long_trial"},
        "POST /v1/checkout_sessions": {"price": "basic_monthly", "success_url": "https://app.example/done"},
        "POST /v1/staff": {"email": f"staff{n}@{side.name}.example", "role": "owner"},
        "PATCH /v1/staff/{staff_id}": {"role": "owner", "active": True},
        "POST /v1/staff/{staff_id}/login_link": {},
    }
    return bodies[operation]


# Where a cross-tenant request is refused with something else than a 404, and why that leaks nothing.
CROSS_TENANT_ANSWER = {
    # Asking for a key of another tenant is refused before anything is looked up, exists or not.
    "POST /v1/api_keys": (403, "scope_too_narrow"),
    # Another tenant's invitation reads as an invalid token: the same answer as a forged one.
    "POST /v1/invites/accept": (422, "invite_invalid"),
    # OFREP refuses any targeting key but the key's own tenant before looking it up, existing or not.
    "POST /ofrep/v1/evaluate/flags/{key}": (403, "customer_forbidden"),
}


def operations(app: Litestar) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi_schema.to_schema()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def fill(path: str, side: Side) -> str:
    for name, which in PARAMETER_IDS.items():
        path = path.replace("{" + name + "}", side[which])
    assert "{" not in path, f"no id for a parameter of {path}: add it to PARAMETER_IDS"
    return path


def query_for(operation: dict[str, Any], side: Side) -> dict[str, str]:
    """Filters that name a customer are given the side's customer (another tenant's must show nothing)."""
    names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    return {"customer": side["customer"]} if "customer" in names else {}


def names_tenant(path: str, operation_key: str) -> bool:
    params = {PARAMETER_IDS.get(part.strip("{}")) for part in path.split("/") if part.startswith("{")}
    return bool(params & TENANT_OWNED) or operation_key in TENANT_NAMED_IN_BODY


# Operations that name a tenant in their body rather than their path.
TENANT_NAMED_IN_BODY = {
    "POST /v1/api_keys",
    "POST /v1/promotion_codes/validate",
    "POST /v1/invites/accept",
    "POST /v1/sso/connections",
    "POST /v1/check",
    "POST /v1/check/batch",
    "POST /v1/check/release",
    "POST /v1/tokens",
    "POST /ofrep/v1/evaluate/flags/{key}",
    # the event's subject; the usage query's customer
    "POST /v1/usage_events",
    "GET /v1/usage",
}


async def fingerprint(db: Database) -> dict[str, list[str]]:
    """Every row of every table, to prove a walk of refusals wrote nothing."""
    rows: dict[str, list[str]] = {}
    async with db.unit_of_work() as session:
        for table in Base.metadata.sorted_tables:
            result = await session.execute(select(table))
            rows[table.name] = sorted(repr(tuple(row)) for row in result.all())
    return rows


async def build_side(api: Api, name: str, shared: dict[str, str]) -> tuple[Side, str]:
    """A tenant on Enterprise with a member, an invoice, a pending invoice item, a credit note, a SCIM
    token, an SSO connection, a webhook endpoint, a discount, an add-on, an invite and two tenant keys
    (the walker's, with every scope, and another one). Returns the side and the walker's secret."""
    side = Side(name, dict(shared))
    customer = await api.post("/v1/customers", {"name": name.upper(), "currency": "USD", "country": "US"})
    c = side.ids["customer"] = customer["id"]
    subscription = await api.post(
        "/v1/subscriptions",
        {
            "customer": c,
            "price": "pro_monthly",
            "addons": [{"price": "extra_seats_monthly"}],
            "trial_days": 0,
        },
    )
    side.ids["subscription"] = subscription["id"]
    side.ids["addon"] = subscription["addons"][0]["id"]
    # Enterprise (SSO) from now on; the add-on stays on the subscription's record.
    await api.post(f"/v1/subscriptions/{side['subscription']}/plan_change", {"price": "enterprise_monthly"})
    member = await api.post(f"/v1/customers/{c}/members", {"email": f"owner@{name}.example", "role": "owner"})
    side.ids["member"], side.ids["user"] = member["id"], member["user"]
    invoices = await api.get("/v1/invoices", params={"customer": c})
    side.ids["invoice"] = invoices["data"][0]["id"]
    item = await api.post(
        "/v1/invoice_items", {"customer": c, "amount": 500, "currency": "USD", "description": "Setup"}
    )
    side.ids["invoice_item"] = item["id"]
    note = await api.post("/v1/credit_notes", {"invoice": side["invoice"], "amount": 100})
    side.ids["credit_note"] = note["id"]
    side.ids["scim_token"] = (await api.post(f"/v1/customers/{c}/scim_tokens", {"name": "idp"}))["id"]
    connection = await api.post(
        "/v1/sso/connections",
        {
            "name": "IdP",
            "customer": c,
            "issuer": f"https://idp.{name}.example",
            "client_id": "tiergate",
            "client_secret": "s3cret",
            "allowed_domains": [f"{name}.example"],
        },
    )
    side.ids["sso_connection"] = connection["id"]
    discounted = await api.post(f"/v1/subscriptions/{side['subscription']}/discounts", {"coupon": "launch20"})
    side.ids["discount"] = discounted["id"]
    invite = await api.post(f"/v1/customers/{c}/invites", {"email": f"invited@{name}.example"})
    side.ids["invite_token"] = invite["token"]
    walker = await api.post("/v1/api_keys", {"name": "walker", "scopes": ["*"], "customer": c})
    other = await api.post("/v1/api_keys", {"name": "other", "scopes": ["check:read"], "customer": c})
    side.ids["api_key"] = other["id"]
    # Webhook endpoints belong to whoever creates them: the tenant's own key.
    hooks = await api.as_key(walker["secret"]).post(
        "/v1/webhook_endpoints", {"url": f"https://{name}.example/hooks", "enabled_events": ["*"]}
    )
    side.ids["webhook"] = hooks["id"]
    bounced = await api.as_key(walker["secret"]).post(
        "/v1/email_suppressions", {"address": f"gone@{name}.example"}
    )
    side.ids["email_address"] = bounced["address"]
    # A delivery of the tenant's past events to it (the walk's relay is off; a replay queues them).
    replay = await api.as_key(walker["secret"]).post(
        f"/v1/webhook_endpoints/{hooks['id']}/replay", {}, expect=200
    )
    side.ids["webhook_delivery"] = replay["deliveries"][0]["id"]
    return side, walker["secret"]


async def email_message_rows(db: Database, side: Side) -> None:
    """One logged e-mail of the side's customer (the walk's relay is off: nothing is mailed by itself)."""
    from datetime import UTC, datetime

    from gateway.notifications.email_models import EmailMessage

    at = datetime(2026, 6, 1, tzinfo=UTC)
    async with db.unit_of_work() as session:
        session.add(
            EmailMessage(
                id=f"emsg_{side.name}",
                tenant_id=side["customer"],
                event_id=f"evt_{side.name}",
                event_type="invoice.finalized",
                template="invoice_finalized",
                recipient=f"billing@{side.name}.example",
                locale="en",
                subject="Invoice",
                raw="",
                status="sent",
                attempts=1,
                sent_at=at,
                created_at=at,
            )
        )
    side.ids["email_message"] = f"emsg_{side.name}"


async def payment_rows(db: Database, side: Side) -> None:
    """A saved method and a succeeded payment of the side's customer, as collection leaves them (no provider
    is called by any walked request: the tenant key only reads them)."""
    from datetime import UTC, datetime

    from gateway.payments.models import Payment, PaymentMethod, PaymentProviderAccount

    at = datetime(2026, 6, 1, tzinfo=UTC)
    c = side["customer"]
    async with db.unit_of_work() as session:
        if await session.get(PaymentProviderAccount, "ppa_walk") is None:
            session.add(
                PaymentProviderAccount(
                    id="ppa_walk",
                    kind="sandbox",
                    name="walk",
                    credentials="sealed",
                    is_default=False,
                    created_at=at,
                    updated_at=at,
                )
            )
            await session.flush()
        session.add(
            PaymentMethod(
                id=f"pm_{side.name}",
                tenant_id=c,
                account_id="ppa_walk",
                provider_method_id=f"x_{side.name}",
                type="card",
                brand="visa",
                last4="4242",
                exp_month=12,
                exp_year=2030,
                mandate_reference=None,
                bank=None,
                status="active",
                priority=0,
                created_at=at,
                updated_at=at,
            )
        )
        await session.flush()
        session.add(
            Payment(
                id=f"pay_{side.name}",
                tenant_id=c,
                invoice_id=None,
                attempt=1,
                idempotency_key=f"walk:{side.name}",
                account_id="ppa_walk",
                method_id=f"pm_{side.name}",
                amount=900,
                currency="USD",
                status="succeeded",
                provider_payment_id=f"x_pay_{side.name}",
                provider_version=1,
                amount_refunded=0,
                off_session=True,
                test_clock_id=None,
                created_at=at,
                updated_at=at,
                settled_at=at,
                reconcile_after=None,
            )
        )
    side.ids["payment_method"] = f"pm_{side.name}"
    side.ids["payment"] = f"pay_{side.name}"


async def shared_ids(api: Api) -> dict[str, str]:
    clock = await api.post("/v1/test_clocks", {"name": "shared", "frozen_time": "2026-06-01T00:00:00Z"})
    codes = await api.get("/v1/promotion_codes")
    meter = await api.post(
        "/v1/meters", {"key": "api_calls", "event_type": "api_call", "aggregation": "count"}
    )
    campaign = await api.post(
        "/v1/dunning_campaigns", {"name": "Shared", "final_action": "cancel", "retry_offsets_hours": [24]}
    )
    override = await api.post("/v1/dunning_overrides", {"campaign": campaign["id"], "plan": "basic"})
    product = (await api.get("/v1/products"))["data"][0]["id"]
    variants = [{"key": "control", "weight": 1}, {"key": "long_trial", "weight": 1, "trial_days": 30}]
    experiment = await api.post(
        "/v1/experiments", {"name": "Shared", "product": product, "variants": variants}
    )
    checkout = await api.post(
        "/v1/checkout_sessions", {"price": "basic_monthly", "success_url": "https://app.example/done"}
    )
    return {
        "experiment": experiment["id"],
        "checkout_session": checkout["id"],
        "dunning_campaign": campaign["id"],
        "dunning_override": override["id"],
        "meter": meter["id"],
        "usage_event": "evt-walk",
        "email_template": "invoice_finalized",
        "coupon": "launch20",
        "promotion_code": codes["data"][0]["id"],
        "price": "basic_monthly",
        "plan": "basic",
        "product": (await api.get("/v1/products"))["data"][0]["id"],
        "feature": "projects",
        "tax_rate": (await api.get("/v1/tax_rates"))["data"][0]["id"],
        "test_clock": clock["id"],
        "policy_version": "1",
        "flag": "reporting_advanced",
        "payment_provider_account": "ppa_none",
        "payment_method": "pm_none",
        "payment": "pay_none",
        "staff_member": "stf_none",  # platform-only rows: a tenant key is refused before any lookup
    }


def tenant_kind_may(operation_key: str, method: str, path: str) -> bool:
    access = access_for(method, path)
    assert access is not None, f"{operation_key} is not in the permission matrix"
    return Caller.TENANT_KEY in access.callers


async def other_credential(tenant: Api, method: str, path: str, access: Access) -> None:
    """An operation whose credential is not an API key: a tenant key gets nothing more than anyone."""
    # What nginx sends to forward auth: the original request (the API key is no end user's token).
    headers = {**tenant._headers(None), "X-Original-Method": "GET", "X-Original-URI": "/api/projects"}
    if path == "/v1/payment_providers/{account_id}/webhooks":
        # A provider's webhook: an API key proves nothing here; an unknown account is a 404.
        response = await tenant.client.request(
            method, path.replace("{account_id}", "ppa_none"), headers=headers
        )
        assert response.status_code == 404, f"{method} {path}: {response.status_code}"
        return
    if path == "/v1/staff_sessions":
        # A staff sign-in: the one-time login link is the credential, and an API key is none.
        body = {"login_token": "tglink_none"}
        response = await tenant.client.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.json()["code"] == "login_link_invalid"
        return
    if path == "/v1/staff_sessions/current":
        # Sign-out: only a staff session token is revoked; an API key is no staff session.
        response = await tenant.client.request(method, path, headers=headers)
        assert response.status_code == 401, f"{method} {path}: {response.status_code}"
        assert response.json()["code"] == "staff_session_invalid"
        return
    response = await tenant.client.request(method, path, headers=headers)
    if Caller.ANYONE in access.callers:
        assert response.status_code == 200, f"{method} {path}: {response.status_code}"
    else:
        assert access.callers == Caller.END_USER, f"{method} {path}"
        assert response.status_code == 401, f"{method} {path}: {response.status_code} {response.text}"


def leaks(text: str, other: Side, sent: Any) -> list[str]:
    """Ids of the other tenant in an answer, apart from those the request itself named (a 404 may say
    which id it did not find)."""
    asked = json.dumps(sent)
    return [
        f"{kind}={value}"
        for kind, value in other.ids.items()
        if kind in TENANT_OWNED and value in text and value not in asked
    ]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background outbox relay: it delivers the setup's events (webhooks, provisioning) on its own
    schedule, and the walk's fingerprint must see only what the walked requests wrote."""
    return dataclasses.replace(settings, relay_enabled=False)


@pytest.fixture
async def billing_demo(demo: Any, db: Database, clock: FrozenClock) -> None:
    """The demo tax rates and the LAUNCH promotion code (coupon `launch20`) beside the demo catalog."""
    from gateway.demo import seed_billing

    async with db.unit_of_work() as session:
        await seed_billing(session, clock)


async def test_every_route_of_the_app_is_in_the_matrix_and_the_matrix_names_no_other(app: Litestar) -> None:
    """Deny by default is only safe if the table is whole: a route without a row (or a row without a
    route, e.g. after a rename) fails here and names itself."""
    routes: set[tuple[str, str]] = set()
    for route in app.routes:
        for method, (handler, _) in getattr(route, "route_handler_map", {}).items():
            if method == "OPTIONS" and handler.handler_name == "options_handler":
                continue
            routes.add((str(method), route.path_format))
        if getattr(getattr(route, "route_handler", None), "is_mount", False):
            routes.add(("*", route.path_format))  # a mounted app (the sandbox): one row for all below it
    missing = sorted(f"{m} {p}" for m, p in routes if access_for(m, p) is None)
    assert missing == [], f"routes missing from gateway/web/permissions.py: {missing}"
    covered = {(m, p) if (m, p) in MATRIX else ("*", p) for m, p in routes}
    assert sorted(f"{m} {p}" for m, p in set(MATRIX) - covered) == []


async def test_scopes_handlers_still_declare_agree_with_the_matrix(app: Litestar) -> None:
    """Handlers' `opt["scope"]` predates the matrix and no longer decides anything; where one is left it
    must say what the matrix says, so a reader of either is not misled."""
    disagreements = []
    for route in app.routes:
        for method, (handler, _) in getattr(route, "route_handler_map", {}).items():
            declared = (handler.opt or {}).get("scope")
            access = access_for(str(method), route.path_format)
            if declared is not None and (access is None or access.scope != declared):
                disagreements.append(f"{method} {route.path_format}: {declared} vs {access}")
    assert disagreements == []


async def test_an_operation_missing_from_the_matrix_is_refused_for_everyone(api: Api, app: Litestar) -> None:
    from litestar import get

    @get("/v1/not_in_the_matrix", sync_to_thread=False)
    def unlisted() -> dict[str, str]:
        return {"ok": "yes"}

    app.register(unlisted)
    response = await api.client.get("/v1/not_in_the_matrix", headers=api._headers(None))
    assert response.status_code == 403
    assert response.json()["code"] == "not_in_permission_matrix"


async def test_a_tenant_key_walking_every_operation_gets_exactly_what_the_matrix_grants(
    api: Api, app: Litestar, db: Database, billing_demo: None
) -> None:
    shared = await shared_ids(api)
    a, secret_a = await build_side(api, "tenant-a", shared)
    b, _ = await build_side(api, "tenant-b", shared)
    await payment_rows(db, a)
    await payment_rows(db, b)
    await email_message_rows(db, a)
    await email_message_rows(db, b)
    # The decision index has both tenants before the walk: the SSO operations ask it whether the plan
    # includes SSO, and a loaded machine's index may still be catching up with the setup's events.
    await synced(api)
    tenant = api.as_key(secret_a)
    walk = operations(app)
    assert len(walk) > 100

    before = await fingerprint(db)
    refused_platform, refused_cross, n = [], [], 0
    for method, path, operation in walk:
        key = f"{method} {path}"
        access = access_for(method, path)
        assert access is not None, f"{key} is in the document but not in the permission matrix"
        if not access.by_api_key:
            await other_credential(tenant, method, path, access)
            continue
        for side in (a, b):
            if not tenant_kind_may(key, method, path):
                n += 1
                body = body_for(key, side, n) if method in ("POST", "PATCH", "PUT") else None
                response = await tenant.client.request(
                    method, fill(path, side), json=body, headers=tenant._headers(None)
                )
                answer = f"{key} ({side.name}): {response.status_code} {response.text}"
                assert response.status_code == 403, answer
                assert response.json()["code"] == "platform_key_required", key
                refused_platform.append(key)
            elif side is b and names_tenant(path, key):
                n += 1
                body = body_for(key, side, n) if method in ("POST", "PATCH", "PUT") else None
                response = await tenant.client.request(
                    method,
                    fill(path, side),
                    json=body,
                    params=query_for(operation, side),
                    headers=tenant._headers(None),
                )
                status, code = CROSS_TENANT_ANSWER.get(key, (404, None))
                assert response.status_code == status, f"{key} (B): {response.status_code} {response.text}"
                if code is not None:
                    assert response.json()["code"] == code, key
                sent = [fill(path, side), body, query_for(operation, side)]
                assert leaks(response.text, b, sent) == [], key
                refused_cross.append(key)
    # None of those refusals wrote anything.
    after = await fingerprint(db)
    changed = {t: sorted(set(after[t]) ^ set(before[t])) for t in after if after[t] != before[t]}
    assert changed == {}
    assert "PATCH /v1/prices/{price}" in refused_platform and "GET /v1/invoices/{invoice_id}" in refused_cross

    # What the matrix grants a tenant key works on its own tenant, and shows nothing of tenant B.
    granted = [
        (method, path, operation)
        for method, path, operation in walk
        if (access := access_for(method, path)) is not None
        and access.by_api_key
        and Caller.TENANT_KEY in access.callers
    ]
    # Removals last, so every other operation still finds what it names.
    granted.sort(key=lambda op: op[0] == "DELETE" or op[1].endswith("/revoke"))
    for method, path, operation in granted:
        key = f"{method} {path}"
        n += 1
        body = body_for(key, a, n) if method in ("POST", "PATCH", "PUT") else None
        response = await tenant.client.request(
            method, fill(path, a), json=body, params=query_for(operation, a), headers=tenant._headers(None)
        )
        assert response.status_code < 400, f"{key} (A): {response.status_code} {response.text}"
        assert leaks(response.text, b, None) == [], f"{key} shows tenant B's {leaks(response.text, b, None)}"


async def test_the_document_states_each_operations_access(app: Litestar) -> None:
    for method, path, operation in operations(app):
        access = access_for(method, path)
        assert access is not None, f"{method} {path}"
        scope = {"scope": access.scope} if access.scope else {}  # no scope: the route checks its credential
        assert operation["x-tiergate-access"] == {"callers": access.kinds(), **scope}
        assert operation["description"].startswith("**Access:** "), f"{method} {path}"
    patch_price = app.openapi_schema.to_schema()["paths"]["/v1/prices/{price}"]["patch"]
    assert patch_price["x-tiergate-access"] == {
        "callers": ["platform_key", "staff"],
        "scope": "catalog:write",
    }
    assert patch_price["description"].startswith("**Access:** platform key, staff. Scope: `catalog:write`.")


# --- the requests of the issue, one by one: 403, and nothing changed ----------------------------------


async def tiny_studio(api: Api) -> tuple[Api, dict[str, Any]]:
    """Tiny Studio on Basic, with a tenant key that holds every scope (the refusal is about its kind)."""
    tiny = await api.post("/v1/customers", {"name": "Tiny Studio", "currency": "USD"})
    await api.post("/v1/subscriptions", {"customer": tiny["id"], "price": "basic_monthly"})
    key = await api.post("/v1/api_keys", {"name": "tiny", "scopes": ["*"], "customer": tiny["id"]})
    return api.as_key(key["secret"]), tiny


def refused(problem: dict[str, Any]) -> None:
    assert problem["status"] == 403
    assert problem["code"] == "platform_key_required"
    assert problem["type"] == "https://tiergate.dev/problems/platform-key-required"


async def test_a_tenant_key_cannot_deactivate_a_shared_price(api: Api, demo: Any) -> None:
    tenant, _ = await tiny_studio(api)
    before = await api.get("/v1/prices/basic_monthly")
    refused(await tenant.patch("/v1/prices/basic_monthly", {"active": False}, expect=403))
    assert await api.get("/v1/prices/basic_monthly") == before
    assert before["active"] is True


async def test_a_tenant_key_cannot_rename_a_plan(api: Api, demo: Any) -> None:
    tenant, _ = await tiny_studio(api)
    before = await api.get("/v1/plans/basic")
    refused(await tenant.patch("/v1/plans/basic", {"name": "Hacked"}, expect=403))
    assert await api.get("/v1/plans/basic") == before
    assert before["name"] != "Hacked"


async def test_a_tenant_key_cannot_create_a_coupon(api: Api, demo: Any) -> None:
    tenant, _ = await tiny_studio(api)
    refused(
        await tenant.post(
            "/v1/coupons", {"id": "FREE100", "percent_off": "100", "duration": "forever"}, expect=403
        )
    )
    await api.get("/v1/coupons/FREE100", expect=404)


async def test_a_tenant_key_cannot_create_a_promotion_code_for_another_tenant(
    api: Api, billing_demo: None
) -> None:
    tenant, _ = await tiny_studio(api)
    other = await api.post("/v1/customers", {"name": "Someone Else", "currency": "USD"})
    before = await api.get("/v1/promotion_codes", params={"limit": 100})
    for customer in (other["id"], None):
        body = {"coupon": "launch20", "code": "FREEFORALL", "customer": customer}
        refused(await tenant.post("/v1/promotion_codes", body, expect=403))
    assert await api.get("/v1/promotion_codes", params={"limit": 100}) == before
    assert json.dumps(before).count("FREEFORALL") == 0
