"""Composition root: builds the Litestar app from settings. The only place that wires everything."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.logging.config import LoggingConfig
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

import gateway.admin
import gateway.portal
import gateway.webui
from gateway.admin.http import API_CONTROLLERS as STAFF_API
from gateway.admin.http import BROWSER_CONTROLLERS as STAFF_BROWSER
from gateway.admin.pages import ADMIN_PAGES
from gateway.admin.staff import StaffGate, staff_may
from gateway.audit.http import CONTROLLERS as AUDIT
from gateway.authz.domain import PolicySnapshot
from gateway.authz.http import CONTROLLERS as AUTHZ
from gateway.authz.service import PolicyService
from gateway.billing.http import CONTROLLERS as BILLING
from gateway.billing.wiring import BillingConfig, billing_services
from gateway.catalog.http import CONTROLLERS as CATALOG
from gateway.config import Settings, load_settings
from gateway.customers.http import CONTROLLERS as CUSTOMERS
from gateway.db.redis import redis_client as make_redis_client
from gateway.db.session import BackgroundWork, Database, is_sqlite
from gateway.dunning.http import CONTROLLERS as DUNNING
from gateway.entitlements.breaker import CircuitBreaker, GuardedQuotaStore
from gateway.entitlements.changes import ChangeNotifier
from gateway.entitlements.engine import Engine, EngineSettings
from gateway.entitlements.feed import close_on_exit_signals
from gateway.entitlements.forward import FORWARD_ROUTER
from gateway.entitlements.http import CONTROLLERS as ENTITLEMENTS
from gateway.entitlements.http import jwks, provide_member_admission
from gateway.entitlements.index import DecisionIndex
from gateway.entitlements.lean import install as install_lean_decisions
from gateway.entitlements.loader import what_if_assignments
from gateway.entitlements.ofrep import OFREP_CONTROLLERS
from gateway.entitlements.quotas import MemoryQuotaStore, QuotaStore, RedisQuotaStore
from gateway.entitlements.reconcile import UsageReconciler, reconcile_loop
from gateway.entitlements.sdk_http import CONTROLLERS as LOCAL_DECISIONS
from gateway.health.http import HEALTH_HANDLERS
from gateway.identity.http import CONTROLLERS as IDENTITY
from gateway.identity.http import KEY_CACHE_SECONDS, authorize
from gateway.identity.key_cache import KeyCache
from gateway.identity.revocation import RevocationList
from gateway.identity.service import ApiKeyService
from gateway.identity.sessions import MemorySessionStore, RedisSessionStore, SessionStore
from gateway.identity.tokens import KeyService
from gateway.kernel.clock import Clock, SystemClock
from gateway.logs import configure_structlog, litestar_formatters, quiet_libraries, resolve_format
from gateway.metering.http import METERING
from gateway.metering.partitions import ensure_partitions, run_maintenance
from gateway.metering.usage_source import DatabaseMeterUsage
from gateway.metrics.http import CONTROLLERS as METRICS
from gateway.notifications.email_http import CONTROLLERS as EMAIL
from gateway.notifications.http import CONTROLLERS as WEBHOOKS
from gateway.notifications.service import seal_endpoint_secrets
from gateway.observability import tracing
from gateway.observability.http import METRICS_HANDLERS, metrics_listener
from gateway.observability.metrics import DatabaseGauges, EngineExporter
from gateway.observability.requests import RequestObserver, observe_requests
from gateway.payments.http import CONTROLLERS as PAYMENTS
from gateway.payments.lookup import billing_config as payments_billing_config
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.runtime import PaymentsRuntime, run_reconciler
from gateway.payments.service import PaymentService, PaymentSettings, ensure_embedded_account
from gateway.portal.experiment_http import CONTROLLERS as EXPERIMENTS
from gateway.portal.http_portal import API_CONTROLLERS as PORTAL_API
from gateway.portal.http_portal import PORTAL_PAGES
from gateway.portal.pricing_pages import ROUTERS as PRICING_PAGES
from gateway.provisioning.hooks import discover_hooks
from gateway.provisioning.http import CONTROLLERS as PRIVACY
from gateway.provisioning.http import provide_member_directory
from gateway.provisioning.jobs import Wiring
from gateway.sandbox import create_sandbox_app, embedded_account, sandbox_mount
from gateway.scim.http import CONTROLLERS as SCIM_TOKENS
from gateway.scim.http import SCIM_ROUTER
from gateway.security.secretbox import SecretBox, box_for
from gateway.sso.http import BROWSER_CONTROLLERS as SSO_BROWSER
from gateway.sso.http import CONTROLLERS as SSO
from gateway.sso.oidc import OidcClient
from gateway.sso.pending import MemoryPendingLogins, PendingLogins, RedisPendingLogins
from gateway.sso.service import seal_client_secrets
from gateway.subscriptions.hooks import SubscriptionListener
from gateway.subscriptions.http import CONTROLLERS as SUBSCRIPTIONS
from gateway.subscriptions.http import EventController, provide_version_subscribers
from gateway.subscriptions.ports import PaymentMethodLookup
from gateway.taxes.http import CONTROLLERS as TAXES
from gateway.web.bodies import check_request
from gateway.web.deps import COMMON_DEPENDENCIES
from gateway.web.idempotency import IdempotencyMiddleware
from gateway.web.openapi import docs_assets_router, document_operations, render_plugins
from gateway.web.openapi_constraints import ConstrainedStructSchemaPlugin
from gateway.web.problems import EXCEPTION_HANDLERS
from gateway.web.strict import reject_unknown_query_params
from gateway.webui.assets import AssetRegistry, serve_static
from gateway.webui.pages import template_config
from gateway.worker.dashboard import dashboard_router
from gateway.worker.jobs import JOBS, InProcessJobs, SaqJobs, job_context, saq_queue

log = logging.getLogger("tiergate")

# How long a shutdown lets the background loops finish the transaction they are in before it cancels them.
SHUTDOWN_GRACE_SECONDS = 10.0

# The page packages (WEB.md): each keeps its templates in `templates/<package>/` and its scripts and
# styles in `static/<package>/` (the shared layout, macros and vendored assets are gateway/webui's).
PAGE_PACKAGES = [
    Path(gateway.webui.__file__).parent,
    Path(gateway.portal.__file__).parent,
    Path(gateway.admin.__file__).parent,
]
# Their routers (gateway.webui.pages.page_router): CSRF, CSP and error pages on every one.
PAGE_ROUTERS: list[Router] = [*PRICING_PAGES, PORTAL_PAGES, ADMIN_PAGES]


async def nudge_after_writes(request: Request[Any, Any, Any]) -> None:
    """A write may have changed what the index answers: have every replica catch up now. Runs after the
    response went out, so the request's unit of work has committed. A refused write nudges for nothing,
    which costs one empty outbox read."""
    # Check endpoints are POSTs that change nothing the index holds: nudging there would turn every
    # check into an outbox read on every replica.
    if request.method in {"POST", "PUT", "PATCH", "DELETE"} and not request.route_handler.opt.get(
        "read_only"
    ):
        notifier: ChangeNotifier = request.app.state.notifier
        await notifier.changed()


async def load_stored_policy(session: AsyncSession) -> PolicySnapshot:
    """The latest published policy version (the store is seeded with the default at start-up)."""
    return await PolicyService(session, SystemClock()).current()


async def seal_stored_secrets(session: AsyncSession, clock: Clock, box: SecretBox) -> int:
    """Encryption at rest for rows written before it (or under a rotated-out key): seal them with the
    current key at every start. Idempotent; two replicas may both rewrite a row, either result opens."""
    resealed = await KeyService(session, clock, box).seal_private_keys()
    resealed += await seal_endpoint_secrets(session, box)
    resealed += await seal_client_secrets(session, box)
    if resealed:
        log.info("sealed %d stored secrets with secret key %r", resealed, box.primary_id)
    return resealed


def provide_subscription_listeners(
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    billing_config: NamedDependency[BillingConfig],
) -> list[SubscriptionListener]:
    services = billing_services(session, clock, billing_config)
    return [services.billing]


def provide_payment_method_lookup(
    session: NamedDependency[AsyncSession], billing_config: NamedDependency[BillingConfig]
) -> PaymentMethodLookup:
    return billing_config.payment_methods(session)


def _redis_and_quotas(settings: Settings) -> tuple[Any | None, QuotaStore]:
    """The shared Redis client (nudges, sessions, sign-ins) and the quota store. With Redis, the quota
    store has its own client with the hot-path timeout and no retries, behind a circuit breaker."""
    if not settings.redis_url:
        return None, MemoryQuotaStore()
    shared = make_redis_client(settings.redis_url, timeout_seconds=settings.redis_timeout_seconds, retries=1)
    quota_client = make_redis_client(settings.redis_url, timeout_seconds=settings.redis_quota_timeout_seconds)
    breaker = CircuitBreaker(settings.quota_breaker_failures, settings.quota_breaker_cooldown_seconds)
    return shared, GuardedQuotaStore(RedisQuotaStore(quota_client), breaker)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    tracer_provider: Any | None = None,
) -> Litestar:
    settings = settings or load_settings()
    quiet_libraries(settings.log_level)
    configure_structlog()
    clock = clock or SystemClock()
    database = db or Database(settings.database_url)
    log_format = resolve_format(settings.log_format, str(database.url))
    # Documents the length limits nested in lists and dicts, which Litestar's own schema drops.
    plugins: list[Any] = [ConstrainedStructSchemaPlugin()]
    # Outermost: the request id (X-Request-ID, in every log line) and the latency histogram per route.
    middleware: list[Any] = [observe_requests, IdempotencyMiddleware]
    if settings.otel_enabled:
        # Spans for requests, SQL, Redis and outbound HTTP; exporter from OTEL_* (gateway/observability).
        provider = tracer_provider or tracing.tracer_provider_from_env()
        tracing.instrument_libraries(provider)
        tracing.instrument_engine(database.engine, provider)
        plugins.append(tracing.request_plugin(provider))
        middleware.insert(0, tracing.route_names)
    # Refuses to start (SecretKeyMissing) on a shared database without TIERGATE_SECRET_KEY.
    secret_box = box_for(settings, embedded=is_sqlite(database.url))
    redis_client, quotas = _redis_and_quotas(settings)
    engine = Engine(
        database,
        clock,
        quotas,
        load_stored_policy,
        EngineSettings(
            poll_interval_seconds=settings.entitlements_poll_seconds,
            max_staleness_seconds=settings.entitlements_max_staleness_seconds,
            fail_open_features=frozenset(settings.fail_open_features),
            horizon_warn_seconds=settings.outbox_horizon_warn_seconds,
            anti_entropy_seconds=settings.entitlements_anti_entropy_seconds,
        ),
    )
    notifier = ChangeNotifier(engine, redis_client)
    # SSO: server-side sessions and pending sign-ins in Redis when configured (shared by every replica).
    sessions: SessionStore = (
        RedisSessionStore(redis_client, clock) if redis_client is not None else MemorySessionStore(clock)
    )
    sso_pending: PendingLogins = (
        RedisPendingLogins(redis_client) if redis_client is not None else MemoryPendingLogins()
    )
    sso_oidc = OidcClient(
        discovery_ttl_seconds=settings.sso_metadata_cache_seconds,
        jwks_ttl_seconds=settings.sso_metadata_cache_seconds,
    )
    # Billing asks payments whether a customer has a usable method (trial end without one, rule 17).
    billing_config = payments_billing_config(settings)
    # The production job queue (Redis): /metrics reads its depth, operators see it at /saq.
    job_queue = saq_queue(settings.redis_url, settings.redis_timeout_seconds) if settings.redis_url else None
    state = State(
        {
            "db": database,
            "clock": clock,
            "settings": settings,
            "engine": engine,
            "notifier": notifier,
            "billing_config": billing_config,
        }
    )
    state.sessions = sessions
    state.secret_box = secret_box
    # Pages (WEB.md): their static files by hashed name, and the secret their CSRF tokens are signed with.
    state.assets = AssetRegistry.scan(folder / "static" for folder in PAGE_PACKAGES)
    state.csrf_secret = secret_box.derive("csrf")
    # The background jobs' names and schedules, for the console's jobs page (admin sits below the worker).
    state.job_specs = [(spec.name, spec.cron, spec.family) for spec in JOBS]
    state.sso_pending = sso_pending
    state.sso_oidc = sso_oidc
    # Payments: provider adapters from accounts (credentials opened with the secret box); test clocks move
    # the providers' clocks too (a hook: subscriptions does not import payments).
    payments = PaymentsRuntime(
        database, clock, secret_box, billing_config, PaymentSettings.from_settings(settings)
    )
    state.payments = payments
    state.clock_advance_hooks = [payments.clock_hook()]
    # Accounts follow the subscription: each replica's in-memory token revocation list, and the relay.
    revocations = RevocationList(
        database,
        poll_interval_seconds=settings.entitlements_poll_seconds,
        horizon_warn_seconds=settings.outbox_horizon_warn_seconds,
    )
    state.revocations = revocations
    # API keys: this replica's cache; deprovisioning anywhere drops the tenant's keys once this replica's
    # revocation list reads it (its poll interval), this replica's own relay right after its commit.
    key_cache = KeyCache(
        clock,
        ttl_seconds=KEY_CACHE_SECONDS,
        max_stale_seconds=settings.entitlements_max_staleness_seconds,
    )
    state.key_cache = key_cache
    # Staff sessions (gateway/admin): the guard admits them where the matrix opens a row to staff.
    state.staff_gate = StaffGate(
        database, clock, session_ttl=timedelta(seconds=settings.staff_session_ttl_seconds)
    )
    # Prometheus (gateway/observability): the engine's counters and state, the database-derived gauges.
    state.metrics_exporter = EngineExporter(engine)
    state.metrics_db = DatabaseGauges(database, clock, settings.health_check_timeout_seconds)
    revocations.on_tenant_revoked.append(key_cache.forget_tenant)
    revocations.on_keys_revoked.append(key_cache.forget_keys)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.migrate_on_start:
            from gateway.db.migrate import upgrade_head

            await upgrade_head(database)
        async with database.unit_of_work() as session:
            if database.dialect == "postgresql":
                # Replicas started together seed the same rows (policy version 1, the signing key, the
                # bootstrap key): one replica at a time, each seeing what the one before it committed.
                await session.execute(text("SELECT pg_advisory_xact_lock(7215150001)"))
            if settings.bootstrap_api_key:
                await ApiKeyService(session, clock).ensure_bootstrap(settings.bootstrap_api_key)
            # An empty policy store gets the default policy as version 1; published versions are kept.
            await PolicyService(session, clock).seed_default()
            await seal_stored_secrets(session, clock, secret_box)
            keys = KeyService(session, clock, secret_box)
            await keys.ensure_key()
            app.state.signer = await keys.signer(settings.issuer)
            if settings.payments_sandbox_mount and settings.payments_embedded_account:
                await ensure_embedded_account(
                    PaymentService(
                        session,
                        clock,
                        ProviderRegistry(
                            secret_box, timeout_seconds=settings.payment_provider_timeout_seconds
                        ),
                    ),
                    base_url=f"{settings.served_url}/sandbox",
                    webhook_base=settings.served_url,
                    open_account=lambda url: embedded_account(app.state.sandbox_app, webhook_url=url),
                )
            # Usage events: this month's partitions and the next ones exist before the first event.
            await ensure_partitions(
                session, clock.now(), months_ahead=settings.metering_partition_months_ahead
            )
        await engine.rebuild()
        # Each worker's index gauges follow its own catch-ups (multiprocess: scraped from any worker).
        engine.on_synced.append(state.metrics_exporter)
        # Stopped at shutdown between transactions, never inside one (see BackgroundWork).
        background = BackgroundWork()
        background.spawn(engine.run())
        background.spawn(notifier.listen())
        try:
            await revocations.load()
        except Exception:  # e.g. a database not migrated yet: the list's own loop keeps trying
            log.exception("revocation list not loaded at start-up; retrying in the background")
        engine.on_synced.append(revocations.nudge)
        background.spawn(revocations.run())
        wiring = Wiring.from_settings(
            settings,
            secrets=secret_box,
            hooks=discover_hooks(clock, sessions=state.get("sessions")),
            on_keys_disabled=key_cache.forget_keys,
        )
        # Background jobs from the one registry (gateway/worker/jobs.py): in process here where enabled
        # (embedded); in production a `tiergate worker` runs them on saq and these settings are off.
        jobs = InProcessJobs(
            job_context(database, clock, settings, wiring),
            relay=settings.relay_enabled,
            billing=settings.scheduler_enabled,
        )
        app.state.relay = jobs
        app.state.jobs = SaqJobs(job_queue) if job_queue is not None else jobs
        if settings.relay_enabled:
            engine.on_synced.append(jobs.nudge)
        if settings.relay_enabled or settings.scheduler_enabled:
            background.spawn(jobs.run())
        if settings.scheduler_enabled and settings.usage_reconcile_seconds > 0:
            # Metered allowances: ingested usage and check-time consumption folded into one truth.
            reconciler = UsageReconciler(engine, DatabaseMeterUsage)
            background.spawn(reconcile_loop(database, reconciler, settings.usage_reconcile_seconds))
        if settings.scheduler_enabled:
            # Usage-event partitions ahead of time, expired dedup keys pruned.
            background.spawn(run_maintenance(database, clock, settings))
            # Payments left processing or unknown (a crash, a timeout) are asked about again.
            background.spawn(run_reconciler(payments, settings.payment_reconcile_interval_seconds))
        # Open /v1/changes streams end on SIGTERM instead of holding the graceful shutdown.
        close_on_exit_signals(engine.feed)
        try:
            async with contextlib.AsyncExitStack() as stack:
                if settings.metrics_port:
                    await stack.enter_async_context(
                        metrics_listener(app.state, settings.metrics_host, settings.metrics_port)
                    )
                yield
        finally:
            await background.stop(SHUTDOWN_GRACE_SECONDS)
            if redis_client is not None:
                await redis_client.aclose()
            if job_queue is not None:
                # Closing the queue's pool must not fail a shutdown while Redis is down.
                with contextlib.suppress(Exception):
                    await job_queue.disconnect()
            if isinstance(quotas, GuardedQuotaStore) and isinstance(quotas.inner, RedisQuotaStore):
                await quotas.inner.aclose()
            if db is None:
                await database.dispose()

    handlers: Sequence[Any] = [
        *CATALOG,
        *CUSTOMERS,
        *SUBSCRIPTIONS,
        *BILLING,
        *PAYMENTS,
        *METERING,
        EventController,
        *IDENTITY,
        *SSO,
        *ENTITLEMENTS,
        *LOCAL_DECISIONS,
        *AUTHZ,
        *SCIM_TOKENS,
        *TAXES,
        *WEBHOOKS,
        *EMAIL,
        *AUDIT,
        *PRIVACY,
        *METRICS,
        *STAFF_API,
        *DUNNING,
        *EXPERIMENTS,
        *PORTAL_API,
    ]
    v1 = Router(
        path="/v1",
        route_handlers=list(handlers),
        guards=[reject_unknown_query_params],
        security=[{"apiKey": []}],
    )
    # OFREP clients authenticate with the same API keys; its paths are fixed by the protocol.
    ofrep = Router(path="/", route_handlers=OFREP_CONTROLLERS)
    docs_assets = docs_assets_router()
    # The sandbox payment provider, served under /sandbox (embedded mode): another service sharing the
    # process, with its own keys, errors and idempotency; its background ticker runs in our lifespan.
    mounted: list[Any] = []
    lifespans: list[Any] = [lifespan]
    if settings.payments_sandbox_mount:
        sandbox_app = create_sandbox_app(settings.payments_sandbox_store, clock=clock)
        mounted.append(sandbox_mount(sandbox_app))
        lifespans.append(lambda _: sandbox_app.lifespan())
        state.sandbox_app = sandbox_app
    app = Litestar(
        route_handlers=[
            v1,
            ofrep,
            FORWARD_ROUTER,
            *HEALTH_HANDLERS,
            *METRICS_HANDLERS,
            jwks,
            *SSO_BROWSER,
            SCIM_ROUTER,
            docs_assets,
            *mounted,
            dashboard_router(job_queue),
            *STAFF_BROWSER,
            serve_static,
            *PAGE_ROUTERS,
        ],
        # One guard for every route: the permission matrix (gateway/web/permissions.py) says who may call
        # each operation, and it authenticates API keys where they are the credential.
        guards=[authorize],
        after_response=nudge_after_writes,
        # Bodies and parameters are checked once, strictly, for every endpoint (web/bodies.py).
        before_request=check_request,
        request_max_body_size=settings.request_max_body_bytes,
        dependencies={
            **{
                k: Provide(v) if k == "session" else Provide(v, sync_to_thread=False)
                for k, v in COMMON_DEPENDENCIES.items()
            },
            # The policy what-if tool compiles drafts with the same index the checks use.
            "index_builder": Provide(lambda: DecisionIndex.build, sync_to_thread=False),
            # ... and with the tenants standing on their plan versions, as the engine loads them.
            "assignments_loader": Provide(lambda: what_if_assignments, sync_to_thread=False),
            # Subscriptions are billed: every subscription service a request builds carries billing.
            "subscription_listeners": Provide(provide_subscription_listeners, sync_to_thread=False),
            "billing_config": Provide(lambda: billing_config, sync_to_thread=False),
            # Trial ends ask whether the customer can be charged (subscriptions.ports).
            "payment_method_lookup": Provide(provide_payment_method_lookup, sync_to_thread=False),
            # The catalog's list of plan versions counts their subscribers (catalog.ports).
            "version_subscribers": Provide(provide_version_subscribers, sync_to_thread=False),
            # Invites (identity) reach customers and the tier through this adapter (layers).
            "member_directory": Provide(provide_member_directory, sync_to_thread=False),
            # Members added or given a role over REST go through the one seat and role check.
            "member_admission": Provide(provide_member_admission, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=template_config(
            (folder / "templates" for folder in PAGE_PACKAGES), functions={"staff_may": staff_may}
        ),
        middleware=middleware,
        plugins=plugins,
        lifespan=lifespans,
        state=state,
        cors_config=CORSConfig(allow_origins=[]),
        openapi_config=OpenAPIConfig(
            title="Tiergate API",
            version="0.1.0",
            description=(
                "Entitlements, access control and subscription billing. Authenticate with "
                "`Authorization: Bearer <secret API key>`. Every POST accepts an `Idempotency-Key` header. "
                "Amounts are integer minor units with a `currency`; timestamps are ISO 8601 UTC."
            ),
            path="/docs",
            # Viewers served from assets vendored in the package (no CDN): gateway/web/docs_assets/.
            render_plugins=render_plugins(),
            components=Components(
                security_schemes={
                    "apiKey": SecurityScheme(
                        type="http", scheme="bearer", description="Secret API key (tg_sk_…)"
                    )
                }
            ),
        ),
        debug=settings.debug,
        logging_config=LoggingConfig(
            # One format for the app, the server and alembic (gateway/logs.py), with the request id.
            formatters=litestar_formatters(log_format),
            root={"handlers": ["queue_listener"], "level": settings.log_level.upper()},
        ),
    )
    # Each operation's access (from the matrix) and the Idempotency-Key header, in the OpenAPI document.
    document_operations(app)
    # With tracing on, every request goes through the traced stack (the lean routes sit outside
    # Litestar's OpenTelemetry middleware, so their requests would have no server span).
    if settings.lean_decisions and not settings.otel_enabled:
        # The per-request decisions ahead of the general stack: same guard, same decisions (lean.py).
        install_lean_decisions(app, RequestObserver().run)
    return app


def freeze_heap() -> None:
    """After start-up, move everything alive into the collector's permanent generation.

    What start-up loaded (the app, its OpenAPI document, the decision index: ~300k tracked objects) lives
    as long as the process. Left to the collector, every full collection walks all of it, 350-650 ms with
    the event loop stopped, every few seconds under load: that was the check path's 150-200 ms p99
    (`benchmarks/profile_check_stalls.py`). Frozen, it is skipped; garbage made later is still collected.
    Collected first, so start-up's own garbage is not frozen with it."""
    gc.collect()
    gc.freeze()


def nodelay_on_listeners() -> int:
    """TCP_NODELAY on every listening TCP socket of this process; returns how many.

    Linux hands a listener's TCP_NODELAY to each connection it accepts, so a response written in two
    parts (headers, body) never waits for the client's delayed ACK (Nagle: up to 40 ms). asyncio/uvloop
    (uvicorn) set it per connection and granian on its listener already; this makes it hold whatever the
    server does. Linux only (it reads /proc/self/fd); elsewhere it does nothing."""
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        return 0
    done = 0
    for entry in fds.iterdir():
        try:
            fd = int(entry.name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:  # a duplicate: closing it leaves the original
                if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                done += 1
        except (OSError, ValueError):
            continue  # closed meanwhile, or not a socket we may touch
    return done


def create_served_app() -> Litestar:
    """The app as `tiergate serve` runs it in each worker: `create_app`, then after start-up TCP_NODELAY
    on the worker's listening sockets and the heap frozen (not in `create_app`: a test process builds
    hundreds of apps, and freezing each would keep the garbage of the ones before)."""
    app = create_app()
    app.on_startup.append(nodelay_on_listeners)
    app.on_startup.append(freeze_heap)
    return app
