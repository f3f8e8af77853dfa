"""Typed settings: `config.toml` (documented defaults) overridden by `TIERGATE_*` environment variables.

Secrets (the bootstrap API key, database passwords inside URLs) come from the environment only.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_CONFIG_FILE = Path(__file__).resolve().parent.parent / "config.toml"


@dataclass(frozen=True)
class Settings:
    # Storage. The embedded default is a SQLite file; production is postgresql+asyncpg://…
    database_url: str = "sqlite+aiosqlite:///var/tiergate.sqlite3"
    # Redis for counters, change stream and jobs. Empty = in-process adapters (embedded mode).
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    # Run `alembic upgrade head` when the service starts (convenient embedded; off for multi-replica).
    migrate_on_start: bool = True
    # How often the in-process scheduler advances due subscriptions (period rollover, trial ends).
    scheduler_interval_seconds: float = 30.0
    scheduler_enabled: bool = True
    # Idempotency keys are kept this long, then may be reused.
    idempotency_ttl_hours: int = 24
    # Request bodies: the largest accepted (bigger is a 413) and how deeply JSON arrays/objects may nest
    # (deeper is a 422; unbounded nesting crashed the decoder).
    request_max_body_bytes: int = 1_048_576
    request_max_json_depth: int = 32
    # The per-request decisions (POST /v1/check, POST /v1/check/batch, GET /v1/authz/forward) answered by a
    # lean ASGI route ahead of the general middleware stack (gateway/entitlements/lean.py); same guard,
    # same decisions, same answers. Off: they go through the full stack like every other route.
    lean_decisions: bool = True
    # `tiergate serve`: "granian" (default; Rust HTTP, one event loop per worker, uvloop where installed)
    # or "uvicorn".
    server: str = "granian"
    # Granian's Rust runtime per worker: "st" (default; one thread, beside the worker's one event loop)
    # or "mt". And how it runs each request's coroutine: "asyncio" (default) or "rust" (granian calls it
    # experimental; Python < 3.12 only). Measured with nginx auth_request at 2,000 req/s over 32
    # connections: added p99 2.09 ms (mt, asyncio), 1.71 ms (st), 1.38 ms (st, rust):
    # benchmarks/bench_forward_auth.py.
    server_runtime_mode: str = "st"
    server_task_impl: str = "asyncio"
    # One test-clock advance moves the clock at most this many calendar months (bounds one request's work).
    test_clock_max_advance_months: int = 24
    # Decision engine: how often each replica looks for changes when nobody nudged it, and how old its
    # index may grow (database unreachable) before checks fail closed.
    entitlements_poll_seconds: float = 1.0
    entitlements_max_staleness_seconds: float = 30.0
    # Anti-entropy: every this many seconds each replica compares its index with the database and
    # reloads the tenants that differ (0 = off).
    entitlements_anti_entropy_seconds: float = 300.0
    # The change feed for SDKs deciding in-process (GET /v1/changes, Server-Sent Events): a heartbeat at
    # least this often, and how long one connection lasts before the client reconnects with Last-Event-ID.
    changes_heartbeat_seconds: float = 10.0
    changes_stream_max_seconds: float = 300.0
    # Change stream: warn when a transaction left open holds the outbox horizon back this long.
    outbox_horizon_warn_seconds: float = 60.0
    # Feature keys that fail open (allowed) when the index is stale or the quota store is down.
    fail_open_features: tuple[str, ...] = ()
    # Redis timeouts (connect and each reply): the quota client on the check hot path, and every other
    # client (change nudges, SSO sessions and sign-ins, the job queue's connect).
    redis_quota_timeout_seconds: float = 0.05
    redis_timeout_seconds: float = 2.0
    # Circuit breaker around the quota store: open after this many consecutive failures or timeouts,
    # answer from the failure policy without calling Redis for the cool-down, then let one probe through.
    quota_breaker_failures: int = 5
    quota_breaker_cooldown_seconds: float = 5.0
    # Issuer (`iss`) of Tiergate's end-user access tokens (empty = the served address, see `issuer`), and
    # their lifetime.
    token_issuer: str = ""
    token_ttl_seconds: int = 900
    # SSO sign-in: the URL browsers reach Tiergate at (the IdP redirects to <it>/sso/callback; empty =
    # token_issuer), how long a signed-in session lives, and how long a started sign-in may take.
    sso_public_url: str = ""
    # Where providers and browsers reach Tiergate from outside (e.g. https://billing.example.com); payment
    # providers that take a webhook URL per request (Mollie) get <this>/v1/payment_providers/<id>/webhooks.
    # Empty: public_url.
    sso_session_ttl_seconds: int = 28800
    # Staff sessions (admin console, staff calls of /v1): how long one lives after its login link.
    staff_session_ttl_seconds: int = 43200
    sso_login_ttl_seconds: int = 600
    # How long an IdP's discovery document and JWKS are cached (an unknown `kid` refetches the JWKS).
    sso_metadata_cache_seconds: float = 3600.0
    # Forward-auth route table ([[tiergate.forward_routes]] in config.toml); empty = the built-in demo table.
    forward_routes: tuple[dict[str, Any], ...] = ()
    # What /v1/authz/forward answers for a request no route matches: "deny" (no_route) or "allow".
    forward_unmatched: str = "deny"
    # Whether forward-auth routes match the path's case exactly (false: folded, as Express and IIS do).
    forward_case_sensitive: bool = False
    # The issuer shown on invoices: its VAT id and country drive tax decisions (EU reverse charge), and
    # invoice numbers read "<invoice_number_prefix>-<sequence>". issuer_address: lines separated by "\n".
    issuer_name: str = "Tiergate Demo Ltd"
    issuer_address: str = "1 Demo Street\nDublin D02 X285\nIreland"
    issuer_country: str = "IE"
    issuer_vat_id: str = "IE6388047V"
    issuer_email: str = "billing@tiergate.example"
    invoice_number_prefix: str = "TG"
    # Bank-transfer instructions printed on `send_invoice` invoices (with an ISO 11649 "RF" reference
    # derived from the invoice number). Empty IBAN: the invoice shows the reference only.
    issuer_iban: str = "IE29AIBK93115212345678"
    issuer_bic: str = "AIBKIE2D"
    issuer_bank_account_name: str = ""  # empty: issuer_name
    # `send_invoice` collection: days from finalisation to the due date unless the subscription or the
    # invoice says otherwise (0..365).
    days_until_due: int = 30
    # Billing: where a mid-period change's proration goes unless the request or the plan's
    # `proration_behavior` says otherwise: create_prorations (pending, next invoice) | always_invoice |
    # none; and how it is shown: net (one line, rule 10's +$6.67) | itemized (credit + charge lines).
    proration_behavior: str = "create_prorations"
    proration_mode: str = "net"
    # The billing run (renewals and their invoices) takes due subscriptions in batches of this many, one
    # transaction per batch.
    billing_run_batch_size: int = 200
    # Readiness (/health/ready): how long the database and Redis probes may take, and how old the relay's
    # last successful pass may be (where this process runs the relay).
    health_check_timeout_seconds: float = 2.0
    health_relay_max_age_seconds: float = 60.0
    # Outbox relay (provisioning, audit, webhooks): run it inside `serve` (embedded; turn off where a
    # worker runs it), and how often it looks when no write nudged it.
    relay_enabled: bool = True
    relay_interval_seconds: float = 1.0
    # In the embedded relay loop, the jobs only the clock makes due (payment and webhook retries, the
    # past-due sweep, the retention purge) run at least this often, and after every pass that handled events.
    relay_due_work_seconds: float = 5.0
    # Accounts follow the subscription: days past due before access is revoked, and how long a
    # deprovisioned tenant's data is kept (never deleted before).
    past_due_grace_days: int = 7
    deprovisioned_retention_days: int = 90
    # Metrics (rule 32): MRR net of recurring discounts (ChartMogul's default) or before them.
    metrics_mrr_subtract_discounts: bool = True
    # Outgoing webhooks: attempts per delivery, exponential backoff (base, cap) and per-attempt timeout.
    webhook_max_attempts: int = 8
    webhook_backoff_seconds: float = 30.0
    webhook_max_backoff_seconds: float = 21600.0
    webhook_timeout_seconds: float = 10.0
    # Payments: how long a provider call may take (then the outcome is `unknown`), how long a payment may
    # stay processing/unknown before reconciliation asks the provider, how often that job runs, and where
    # a 3-D Secure page sends the customer back when the caller gave no return_url.
    payment_provider_timeout_seconds: float = 10.0
    payment_reconcile_after_seconds: float = 300.0
    payment_reconcile_interval_seconds: float = 60.0
    payment_return_url: str = "http://127.0.0.1:8000/"
    # Where payment providers reach Tiergate from outside (https://billing.example.com): a provider that takes
    # a webhook URL per request (Mollie) gets <this>/v1/payment_providers/<account id>/webhooks. Empty:
    # public_url.
    public_base_url: str = ""
    # The billing run charges each batch's charge_automatically invoices right after the batch commits, this
    # many provider calls at a time (0: leave them to the periodic `collection` job).
    billing_run_collect_concurrency: int = 4
    # Outbound requests to user-given URLs (webhooks; gateway/security/outbound.py): http:// targets, and
    # loopback/private/link-local/reserved addresses, are refused unless these allow them (tests, dev).
    webhook_allow_http: bool = False
    webhook_allow_private_targets: bool = False
    # The sandbox payment provider (gateway/sandbox): served under /sandbox of this app (the embedded
    # default; a separate `tiergate sandbox` process is the other way), keeping its data in this SQLite
    # file (":memory:" forgets it at exit).
    payments_sandbox_mount: bool = True
    payments_sandbox_store: str = "var/sandbox.sqlite3"
    # With no payment provider account at all, create one on the mounted sandbox at start (default in
    # config.toml, so `tiergate serve` collects out of the box; off for apps built in code, e.g. tests).
    payments_embedded_account: bool = False
    # Usage metering: how long a received event's dedup key (tenant, source, id) is kept, how late and how
    # far ahead of the customer's now (wall clock or test clock) an event's time may be, and how many
    # monthly partitions of usage_events PostgreSQL keeps ready ahead of now.
    metering_dedup_retention_days: int = 35
    metering_late_grace_days: int = 35
    metering_future_tolerance_seconds: int = 300
    metering_partition_months_ahead: int = 2
    # Metered allowances (gateway/entitlements/reconcile.py): how often `serve` folds ingested usage and
    # check-time consumption into one truth per period (alerts, drift; 0 = only on request), and how long
    # after a period's end late usage is still billed (an adjustment line, or a credit note).
    usage_reconcile_seconds: float = 60.0
    usage_adjustment_window_days: int = 35
    # Lifetime of a member invitation link.
    invite_ttl_hours: int = 72
    # SCIM: IdP groups whose displayName is not a role name, mapped to a role ("Engineering=editor");
    # asked before the convention that a group named like a role ("Admins") is that role.
    scim_group_roles: tuple[str, ...] = ()
    # E-mail to customers (gateway/notifications, e-mail): "file" writes one .eml per message into
    # mail_dir (the embedded default in config.toml, so a newcomer sees them), "smtp" sends through
    # smtp_host:smtp_port ("none" | "starttls" | "tls"; the SMTP user and password come from the
    # environment only: TIERGATE_SMTP_USERNAME, TIERGATE_SMTP_PASSWORD), "off" queues nothing (apps built
    # in code, e.g. tests, unless they ask for mail). Attempts and backoff as for webhooks.
    mail_transport: str = "off"
    mail_dir: str = "var/mail"
    mail_from: str = "Tiergate <billing@tiergate.localhost>"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: str = "none"
    mail_timeout_seconds: float = 10.0
    mail_max_attempts: int = 6
    mail_backoff_seconds: float = 60.0
    mail_max_backoff_seconds: float = 21600.0
    # Members with one of these roles get a customer's billing mails besides its billing e-mail address.
    mail_billing_roles: tuple[str, ...] = ("owner", "billing")
    # Where links in mails point (update the payment method, see an invoice); empty = public_url.
    mail_link_base_url: str = ""
    # Environment only: a secret API key accepted with full scope (creates itself on first use).
    bootstrap_api_key: str = field(default="", repr=False)
    # Environment only (TIERGATE_SECRET_KEY): the keys that encrypt stored secrets, "k2:<b64>,k1:<b64>"
    # (the first seals, all open). Read from the environment even when Settings is built by hand, so every
    # Settings of a process carries the deployment's key.
    secret_key: str = field(default_factory=lambda: os.environ.get("TIERGATE_SECRET_KEY", ""), repr=False)
    # Without secret_key, the embedded default (SQLite) keeps a generated key here (mode 0600); any other
    # database refuses to start without secret_key.
    secret_key_file: str = "var/secret.key"
    log_level: str = "INFO"
    # "json" | "console" | "auto" (console embedded, json with PostgreSQL): gateway/logs.py.
    log_format: str = "auto"
    # Prometheus: /metrics needs a platform key with `operations:read`; metrics_port > 0 also serves it
    # without a credential on metrics_host (a private network's scraper).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # OpenTelemetry tracing; the exporter comes from the standard OTEL_* environment variables.
    otel_enabled: bool = False
    debug: bool = False

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def served_url(self) -> str:
        """http://<host>:<port> as a client on this machine reaches it (a wildcard listen address is
        reached on loopback). `tiergate serve --host/--port` export what they serve on, so this follows."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def issuer(self) -> str:
        """The access tokens' `iss`: `token_issuer` when configured, else the served address."""
        return self.token_issuer or self.served_url

    @property
    def public_url(self) -> str:
        """Where browsers reach Tiergate (SSO redirect URIs): `sso_public_url`, else the issuer."""
        return self.sso_public_url or self.issuer


_SECRET_ONLY_FROM_ENV = {"bootstrap_api_key", "secret_key"}


def _coerce(raw: str, current: Any) -> Any:
    if isinstance(current, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(current, int):
        return int(raw)
    if isinstance(current, float):
        return float(raw)
    if isinstance(current, tuple):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


def load_settings(config_file: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ) if env is None else env
    path = Path(env.get("TIERGATE_CONFIG", "")) if env.get("TIERGATE_CONFIG") else config_file
    path = path or DEFAULT_CONFIG_FILE
    values: dict[str, Any] = {}
    if path.exists():
        with path.open("rb") as fh:
            document = tomllib.load(fh)
        values.update(
            {k: v for k, v in document.get("tiergate", {}).items() if k not in _SECRET_ONLY_FROM_ENV}
        )
    defaults = Settings()
    known = {f.name for f in fields(Settings)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown settings in {path}: {sorted(unknown)}")
    for name in known:
        env_value = env.get(f"TIERGATE_{name.upper()}")
        if env_value is not None:
            values[name] = _coerce(env_value, getattr(defaults, name))
    for name, value in list(values.items()):
        if isinstance(getattr(defaults, name), tuple) and isinstance(value, list):
            values[name] = tuple(value)
    return Settings(**values)
