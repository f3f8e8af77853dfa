"""Builds a `PaymentProvider` from a provider account row: `kind` → adapter class, credentials opened
with the secret box. Adapters are imported lazily, so a kind whose SDK is missing fails only when used.

Tests (and deployments with another provider) register a factory with `register_kind`."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable

from gateway.kernel.errors import Conflict
from gateway.payments.models import PaymentProviderAccount
from gateway.payments.port import PaymentProvider
from gateway.security.secretbox import SecretBox, column_context

Factory = Callable[..., PaymentProvider]

# kind -> "module:Class"; constructed as Adapter(credentials, timeout_seconds=...)
ADAPTERS: dict[str, str] = {
    "sandbox": "gateway.payments.providers.sandbox:SandboxProvider",
    "stripe": "gateway.payments.providers.stripe:StripeProvider",
    "mollie": "gateway.payments.providers.mollie:MollieProvider",
}

# Credential keys each kind needs (the rest are optional).
REQUIRED_CREDENTIALS: dict[str, frozenset[str]] = {
    "sandbox": frozenset({"base_url", "api_key", "webhook_secret"}),
    "stripe": frozenset({"secret_key", "webhook_secret"}),
    "mollie": frozenset({"api_key"}),
}

# Kinds whose webhook URL Tiergate names per request (Mollie takes `webhookUrl` on each payment): when the
# account's credentials carry none, the registry derives it from the public base URL.
DERIVED_WEBHOOK_URL: frozenset[str] = frozenset({"mollie"})

_OVERRIDES: dict[str, Factory] = {}


class ProviderNotAvailable(Conflict):
    code = "payment_provider_unavailable"


def register_kind(kind: str, factory: Factory | None) -> None:
    """Use `factory(credentials, timeout_seconds=...)` for `kind` (None restores the built-in adapter)."""
    if factory is None:
        _OVERRIDES.pop(kind, None)
    else:
        _OVERRIDES[kind] = factory


def credentials_context(account_id: str) -> str:
    return column_context("payment_provider_accounts", "credentials", account_id)


def seal_credentials(box: SecretBox, account_id: str, credentials: dict[str, str]) -> str:
    return box.seal(json.dumps(credentials, sort_keys=True), context=credentials_context(account_id))


def open_credentials(box: SecretBox, account: PaymentProviderAccount) -> dict[str, str]:
    value: dict[str, str] = json.loads(box.open(account.credentials, context=credentials_context(account.id)))
    return value


def factory_for(kind: str) -> Factory:
    if kind in _OVERRIDES:
        return _OVERRIDES[kind]
    target = ADAPTERS.get(kind)
    if target is None:
        raise ProviderNotAvailable(f"no adapter for payment provider kind {kind!r}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ProviderNotAvailable(f"the {kind} adapter is not installed: {exc}") from exc
    factory: Factory = getattr(module, class_name)
    return factory


def webhook_url(public_base_url: str, account_id: str) -> str:
    """Where a provider posts one account's webhooks: `<base>/v1/payment_providers/<id>/webhooks`."""
    return f"{public_base_url.rstrip('/')}/v1/payment_providers/{account_id}/webhooks"


class ProviderRegistry:
    """Adapters per account, built once per registry (a unit of work, a job pass). With a
    `public_base_url`, a Mollie account without `webhook_url` in its credentials gets
    `webhook_url(public_base_url, account.id)`."""

    def __init__(self, box: SecretBox, *, timeout_seconds: float = 10.0, public_base_url: str = "") -> None:
        self.box = box
        self.timeout_seconds = timeout_seconds
        self.public_base_url = public_base_url
        self._built: dict[str, PaymentProvider] = {}

    def credentials(self, account: PaymentProviderAccount) -> dict[str, str]:
        """The account's credentials as its adapter gets them (opened, plus the derived webhook URL)."""
        credentials = open_credentials(self.box, account)
        if (
            account.kind in DERIVED_WEBHOOK_URL
            and not credentials.get("webhook_url")
            and self.public_base_url
        ):
            credentials["webhook_url"] = webhook_url(self.public_base_url, account.id)
        return credentials

    def provider(self, account: PaymentProviderAccount) -> PaymentProvider:
        built = self._built.get(account.id)
        if built is None:
            credentials = self.credentials(account)
            built = factory_for(account.kind)(credentials, timeout_seconds=self.timeout_seconds)
            self._built[account.id] = built
        return built
