"""Job functions (the worker calls them; embedded mode runs them in the app's lifespan) and the wiring
of the relay's consumers.

Consumers, each with its own watermark:
- `provisioning`: subscription lifecycle → accounts provisioned, roles clamped, access revoked/restored;
- `audit`: member, provisioning, access and policy events → audit log entries;
- `webhooks`: events the SaaS app subscribes to → pending webhook deliveries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.service import audited
from gateway.audit.service import handle_event as audit_event
from gateway.billing.wiring import BillingConfig
from gateway.config import Settings
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.db.stream import DEFAULT_WARN_AFTER_SECONDS, horizon_watch
from gateway.dunning.service import consumer_handler as dunning_handler
from gateway.dunning.service import run_due as run_due_dunning
from gateway.dunning.service import wants as dunning_wants
from gateway.kernel.clock import Clock
from gateway.kernel.waiting import wait_for_nudge
from gateway.metrics.recorder import MetricsRecorder
from gateway.metrics.recorder import wants as metrics_wants
from gateway.notifications import Consumer, DeliveryPolicy, Relay, WebhookSender, enqueue_handler, wants_event
from gateway.notifications.email_service import EmailQueuer, EmailSender, MailConfig, wants_email
from gateway.notifications.email_transport import MailTransport, transport_from_settings
from gateway.payments.collection import Collector, collect_due
from gateway.payments.service import PaymentSettings
from gateway.payments.webhooks import consumer_handler as payments_handler
from gateway.payments.webhooks import wants as payments_wants
from gateway.provisioning.hooks import AccessHook, discover_hooks
from gateway.provisioning.service import Provisioner, ProvisioningSettings, purge_expired, sweep_past_due
from gateway.security.outbound import OutboundPolicy
from gateway.security.secretbox import SecretBox, box_for

log = logging.getLogger("tiergate.jobs")


@dataclass
class Wiring:
    """What the composition root hands the jobs: settings, the secret box (webhook secrets), deprovisioning
    hooks, and a callback that drops disabled API keys from this replica's key cache."""

    secrets: SecretBox
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    hooks: Sequence[AccessHook] = ()
    on_keys_disabled: Callable[[list[str]], None] | None = None
    horizon_warn_seconds: float = DEFAULT_WARN_AFTER_SECONDS
    # Payments: provider webhooks applied by the `payments` consumer (invoices paid, methods attached).
    billing: BillingConfig = field(default_factory=BillingConfig)
    payments: PaymentSettings = field(default_factory=PaymentSettings)
    # E-mail to customers (gateway/notifications/email_service.py); no transport = no mails queued.
    mail: MailConfig = field(default_factory=MailConfig)
    mail_transport: MailTransport | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **kw: object) -> Wiring:
        kw.setdefault("secrets", box_for(settings))
        return cls(
            provisioning=ProvisioningSettings(
                past_due_grace_days=settings.past_due_grace_days,
                deprovisioned_retention_days=settings.deprovisioned_retention_days,
            ),
            delivery=DeliveryPolicy(
                max_attempts=settings.webhook_max_attempts,
                backoff_seconds=settings.webhook_backoff_seconds,
                max_backoff_seconds=settings.webhook_max_backoff_seconds,
                timeout_seconds=settings.webhook_timeout_seconds,
                outbound=OutboundPolicy.for_webhooks(settings),
            ),
            horizon_warn_seconds=settings.outbox_horizon_warn_seconds,
            billing=BillingConfig.from_settings(settings),
            payments=PaymentSettings.from_settings(settings),
            mail=MailConfig.from_settings(settings, BillingConfig.from_settings(settings).issuer),
            mail_transport=(None if settings.mail_transport == "off" else transport_from_settings(settings)),
            **kw,  # type: ignore[arg-type]
        )


def consumers(clock: Clock, wiring: Wiring) -> list[Consumer]:
    async def provision(session: AsyncSession, event: OutboxEvent) -> None:
        provisioner = Provisioner(session, clock, wiring.provisioning, wiring.hooks, wiring.on_keys_disabled)
        await provisioner.handle(event)

    async def record_metrics(session: AsyncSession, event: OutboxEvent) -> None:
        await MetricsRecorder(session, clock).handle(event)

    return [
        Consumer("provisioning", provision, lambda t: t.startswith("subscription.")),
        Consumer("metrics", record_metrics, metrics_wants),
        Consumer("audit", audit_event, audited),
        Consumer("webhooks", enqueue_handler(clock), wants_event),
        Consumer(
            "payments",
            payments_handler(
                clock,
                wiring.payments.registry(wiring.secrets),
                wiring.billing,
                wiring.payments,
            ),
            payments_wants,
        ),
        # Dunning: failed renewals start a run; payments, voids and cancellations move or stop it.
        Consumer(
            "dunning",
            dunning_handler(clock, wiring.payments.registry(wiring.secrets), wiring.billing, wiring.payments),
            dunning_wants,
        ),
        Consumer(
            "email",
            EmailQueuer(clock, wiring.mail, wiring.secrets).handle,
            wants_email if wiring.mail_transport is not None else (lambda _type: False),
        ),
    ]


def default_wiring(clock: Clock) -> Wiring:
    """For a worker that has no app: settings from config/env, the SCIM hook if installed (sessions need
    the app's store; a worker should pass a Wiring with a SessionsHook around its Redis store)."""
    from gateway.config import load_settings

    return Wiring.from_settings(load_settings(), hooks=discover_hooks(clock))


async def relay_once(db: Database, clock: Clock, wiring: Wiring | None = None) -> int:
    """Job: hand every new outbox event to every consumer; returns (consumer, event) pairs handled.

    Provisioning writes events of its own (`customer.provisioned`, `access.revoked`, `member.updated`),
    so the pass repeats until nothing new turns up (bounded)."""
    wiring = wiring or default_wiring(clock)
    relay = Relay(
        db, clock, consumers(clock, wiring), watch=horizon_watch("relay", wiring.horizon_warn_seconds)
    )
    total = 0
    for _ in range(5):
        handled = await relay.run_once()
        total += handled
        if not handled:
            break
    return total


async def deliver_webhooks(db: Database, clock: Clock, wiring: Wiring | None = None) -> int:
    """Job: one attempt at every due webhook delivery; returns the attempts made."""
    wiring = wiring or default_wiring(clock)
    return await WebhookSender(db, clock, wiring.secrets, wiring.delivery).deliver_due()


async def deliver_mail(db: Database, clock: Clock, wiring: Wiring | None = None) -> int:
    """Job: one attempt at every due e-mail; returns the attempts made."""
    wiring = wiring or default_wiring(clock)
    if wiring.mail_transport is None:
        return 0
    return await EmailSender(db, clock, wiring.mail_transport, wiring.mail).deliver_due()


async def tick(db: Database, clock: Clock, wiring: Wiring | None = None) -> int:
    """Everything once: relay, past-due sweep, retention purge, relay again (their events), first
    payment attempts of invoices charged automatically and dunning's due retries (outside any
    transaction), webhook attempts."""
    wiring = wiring or default_wiring(clock)
    done = await relay_once(db, clock, wiring)
    revoked = await sweep_past_due(db, clock, wiring.provisioning, wiring.hooks, wiring.on_keys_disabled)
    revoked += await purge_expired(db, clock, wiring.provisioning, wiring.hooks)
    if revoked:
        done += await relay_once(db, clock, wiring)
    collector = Collector(
        db,
        clock,
        wiring.payments.registry(wiring.secrets),
        wiring.billing,
        wiring.payments,
        actor="system:collection",
    )
    collected = await collect_due(collector)
    if collected:
        done += await relay_once(db, clock, wiring)
    # Dunning's retries that are due (on the wall clock, or on a test clock that moved), then their events.
    dunned = await run_due_dunning(collector)
    if dunned:
        done += await relay_once(db, clock, wiring)
    collected += dunned
    done += await deliver_webhooks(db, clock, wiring)
    return done + revoked + collected + await deliver_mail(db, clock, wiring)


class BackgroundRelay:
    """Embedded mode: runs `tick` after every nudge (a committed write) or every `interval` seconds."""

    def __init__(self, db: Database, clock: Clock, wiring: Wiring, interval_seconds: float) -> None:
        self.db = db
        self.clock = clock
        self.wiring = wiring
        self.interval_seconds = interval_seconds
        self._nudged = asyncio.Event()
        self._lock = asyncio.Lock()
        # time.monotonic() of the loop's start and of the last pass that succeeded (readiness reads them).
        self.started_at: float | None = None
        self.last_ok_at: float | None = None

    def nudge(self, *_: object) -> None:
        self._nudged.set()

    async def tick(self) -> int:
        async with self._lock:
            handled = await tick(self.db, self.clock, self.wiring)
        self.last_ok_at = time.monotonic()
        return handled

    async def run(self) -> None:
        self.started_at = time.monotonic()
        while True:
            await wait_for_nudge(self._nudged, self.interval_seconds)
            self._nudged.clear()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed pass must not stop the relay; the next pass retries
                log.exception("relay pass failed")
                await asyncio.sleep(self.interval_seconds)
