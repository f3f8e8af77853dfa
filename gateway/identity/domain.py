"""API-key scopes and the principal a request acts as. Pure."""

from __future__ import annotations

import hashlib
import secrets

from gateway.kernel.auth import Principal

__all__ = ["ALL_SCOPES", "Principal", "hash_secret", "new_secret", "valid_scope"]

SECRET_PREFIX = "tg_sk_"

# resource:action pairs; "*" grants everything, "resource:*" every action on a resource.
RESOURCES = (
    "catalog",
    "customers",
    "subscriptions",
    "test_clocks",
    "events",
    "api_keys",
    "check",
    "policies",
    "entitlements",
    "tokens",
    "billing",  # invoices, credit notes, credit balance, tax rates, billing runs
    "members",
    "webhooks",
    "sso",
    "audit",
    "privacy",
    "metrics",  # MRR, churn, retention, LTV (platform keys)
    "operations",  # /metrics for Prometheus (read), the job queue's dashboard (write)
    "meters",  # meter definitions (usage metering)
    "usage",  # usage events (report, void) and usage queries
    "email",  # customer e-mails: suppressions, branding, preferences, template previews
    "portal",  # customer portal: its configuration (platform keys), portal session links
    "staff",  # staff members (gateway/admin): `staff:read` lists them, `staff:write` manages them (owners)
)
ACTIONS = ("read", "write")
ALL_SCOPES = frozenset(f"{r}:{a}" for r in RESOURCES for a in ACTIONS)


def valid_scope(scope: str) -> bool:
    if scope == "*":
        return True
    resource, _, action = scope.partition(":")
    return resource in RESOURCES and action in (*ACTIONS, "*")


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # A fast hash is right here (unlike passwords): the secret has 256 bits of entropy, so there is
    # nothing to brute-force, and the check runs on every request.
    return hashlib.sha256(secret.encode()).hexdigest()
