"""Outgoing webhooks: endpoints, turning outbox events into deliveries, and delivering them.

Signing follows the Standard Webhooks spec with the `standardwebhooks` library: `webhook-id` is the
outbox event id (the same on every attempt, so receivers dedupe by it), `webhook-timestamp` is the wall
time of the attempt (receivers check it against their own clock, ±5 minutes, whatever a test clock
says), `webhook-signature` is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.

At least once: a delivery row is written in the relay's transaction with the event's receipt; a 2xx
marks it delivered; anything else (status, timeout, refused connection) schedules another attempt after
an exponential backoff, until `max_attempts`, then it is `failed` (kept in the log).

Endpoint URLs are user input: they pass `gateway.security.outbound` when saved and on every send (no
private or loopback targets, no redirects), and `last_error` records only a failure class. The signing
secret is stored sealed by the secret box and opened only to sign or to show it to its owner.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from gateway.db.outbox import OutboxEvent, record_change
from gateway.db.session import Database
from gateway.kernel.clock import Clock, SystemClock, format_timestamp
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.notifications.models import WebhookDelivery, WebhookEndpoint
from gateway.notifications.repository import WebhookRepository
from gateway.security.outbound import OutboundPolicy, check_destination, failure_class, guarded_client
from gateway.security.secretbox import SecretBox, column_context

log = logging.getLogger("tiergate.webhooks")

SECRET_PREFIX = "whsec_"
# Webhook event type for each outbox event type sent as such.
DIRECT_TYPES = frozenset(
    {
        "customer.provisioned",
        "customer.data_purged",
        "member.added",
        "member.removed",
        "access.revoked",
        "access.restored",
        # A metered feature's usage reached an alert percentage of its period allowance (once per
        # threshold per period; gateway/metering/allowance.py).
        "usage.threshold_reached",
        # A hosted checkout created its customer and subscription (gateway/portal).
        "checkout.completed",
    }
)
PREFIXES = ("subscription.", "invoice.", "dunning.")
# Internal requests between packages, never sent to an app (the e-mail package sends the mail itself).
INTERNAL_TYPES = frozenset({"dunning.email_requested"})
# Events a replay looks at per call (the answer says where to go on).
REPLAY_LIMIT = 1000
EVENT_TYPES = (
    *sorted(DIRECT_TYPES | {"member.role_changed"}),
    "subscription.*",
    "invoice.*",
    "dunning.*",
)


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"


def webhook_type(event: OutboxEvent) -> str | None:
    """The webhook event an outbox event becomes, or None if it is not sent."""
    if event.type in INTERNAL_TYPES:
        return None
    if event.type in DIRECT_TYPES or event.type.startswith(PREFIXES):
        return event.type
    if event.type == "member.updated":
        data = event.data or {}
        if data.get("role") != data.get("previous_role"):
            return "member.role_changed"
    return None


def subscribed(patterns: Sequence[str], type_: str) -> bool:
    for pattern in patterns:
        if pattern in ("*", type_) or (pattern.endswith(".*") and type_.startswith(pattern[:-1])):
            return True
    return False


def _check_events(patterns: Sequence[str]) -> list[str]:
    known = set(EVENT_TYPES) | {"*"}

    def valid(pattern: str) -> bool:
        if pattern in known or pattern.startswith(PREFIXES):
            return True
        # A family wildcard ("member.*") is valid when the family exists.
        return pattern.endswith(".*") and any(t.startswith(pattern[:-1]) for t in known)

    bad = [p for p in patterns if not valid(p)]
    if bad or not patterns:
        raise ValidationFailed(
            f"unknown event types {bad}; choose from {[*EVENT_TYPES, '*']}" if bad else "no event types",
            field="enabled_events",
        )
    return sorted(set(patterns))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def _secret_context(endpoint_id: str) -> str:
    return column_context("webhook_endpoints", "secret", endpoint_id)


def seal_secret(box: SecretBox, endpoint_id: str, secret: str) -> str:
    return box.seal(secret, context=_secret_context(endpoint_id))


def open_secret(box: SecretBox, row: WebhookEndpoint) -> str:
    return box.open(row.secret, context=_secret_context(row.id))


async def seal_endpoint_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Seal secrets stored in clear (before encryption at rest) or under a retired key; returns how many."""
    endpoints = await WebhookRepository(session).all_endpoints()
    resealed = box.reseal_column(endpoints, "webhook_endpoints", "secret")
    await session.flush()
    return resealed


class WebhookEndpointService:
    def __init__(
        self,
        repository: WebhookRepository,
        clock: Clock,
        box: SecretBox,
        outbound: OutboundPolicy | None = None,
    ) -> None:
        self.repo = repository
        self.clock = clock
        self.box = box
        self.outbound = outbound or OutboundPolicy()

    def secret_of(self, row: WebhookEndpoint) -> str:
        """The endpoint's signing secret in clear, for its owner (create and retrieve responses)."""
        return open_secret(self.box, row)

    async def create(
        self,
        *,
        url: str,
        enabled_events: Sequence[str],
        description: str | None = None,
        enabled: bool = True,
        scope: str | None = None,
    ) -> WebhookEndpoint:
        now = self.clock.now()
        await check_destination(url, self.outbound)
        endpoint_id = new_id("we")
        row = WebhookEndpoint(
            id=endpoint_id,
            tenant_id=scope,
            url=url,
            secret=seal_secret(self.box, endpoint_id, new_secret()),
            description=description,
            enabled_events=_check_events(enabled_events),
            enabled=enabled,
            created_at=now,
            updated_at=now,
        )
        self.repo.add(row)
        await self.repo.flush()
        await self._audited(row, "webhook_endpoint.created", url=row.url, enabled_events=row.enabled_events)
        return row

    async def _audited(self, row: WebhookEndpoint, type_: str, **data: Any) -> None:
        await record_change(
            self.repo.session,
            type_,
            "webhook_endpoint",
            row.id,
            self.clock.now(),
            tenant_id=row.tenant_id,
            **data,
        )

    async def get(self, endpoint_id: str, *, scope: str | None) -> WebhookEndpoint:
        row = await self.repo.endpoint(endpoint_id, scope=scope)
        if row is None:
            raise EndpointNotFound(f"no webhook endpoint {endpoint_id!r}")
        return row

    async def list(self, *, scope: str | None, after: str | None, limit: int) -> Page[WebhookEndpoint]:
        return Page.from_overfetch(await self.repo.endpoints(scope=scope, after=after, limit=limit), limit)

    async def update(
        self, endpoint_id: str, changes: dict[str, Any], *, scope: str | None
    ) -> WebhookEndpoint:
        row = await self.get(endpoint_id, scope=scope)
        if "url" in changes:
            await check_destination(changes["url"], self.outbound)
            row.url = changes["url"]
        if "enabled_events" in changes:
            row.enabled_events = _check_events(changes["enabled_events"])
        if "enabled" in changes:
            row.enabled = bool(changes["enabled"])
        if "description" in changes:
            row.description = changes["description"]
        row.updated_at = self.clock.now()
        await self.repo.flush()
        await self._audited(row, "webhook_endpoint.updated", changed=sorted(changes))
        return row

    async def delete(self, endpoint_id: str, *, scope: str | None) -> WebhookEndpoint:
        row = await self.get(endpoint_id, scope=scope)
        await self.repo.delete_endpoint(row)
        await self._audited(row, "webhook_endpoint.deleted")
        return row

    async def deliveries(
        self, endpoint_id: str, *, scope: str | None, after: str | None, limit: int, status: str | None
    ) -> Page[WebhookDelivery]:
        await self.get(endpoint_id, scope=scope)
        rows = await self.repo.deliveries(endpoint_id, after=after, limit=limit, status=status)
        return Page.from_overfetch(rows, limit)

    async def delivery(self, delivery_id: str, *, scope: str | None) -> WebhookDelivery:
        row = await self.repo.delivery(delivery_id)
        if row is None or (scope is not None and row.tenant_id != scope):
            raise DeliveryNotFound(f"no webhook delivery {delivery_id!r}")
        endpoint = await self.repo.endpoint(row.endpoint_id, scope=scope)
        if endpoint is None:  # a platform endpoint's delivery of this tenant's event: not the tenant's
            raise DeliveryNotFound(f"no webhook delivery {delivery_id!r}")
        return row

    async def resend(self, delivery_id: str, *, scope: str | None) -> WebhookDelivery:
        """Queue a delivery again (delivered, failed or still retrying): due now, a fresh attempt budget.
        It keeps its place in its endpoint's order (its event's `seq`)."""
        row = await self.delivery(delivery_id, scope=scope)
        _requeue(row, self.clock.now())
        await self.repo.flush()
        await record_change(
            self.repo.session,
            "webhook_delivery.resent",
            "webhook_delivery",
            row.id,
            self.clock.now(),
            tenant_id=row.tenant_id,
            endpoint=row.endpoint_id,
            event=row.event_id,
        )
        return row

    async def replay(
        self,
        endpoint_id: str,
        *,
        scope: str | None,
        from_seq: int | None = None,
        to_seq: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        event_types: Sequence[str] | None = None,
        limit: int = REPLAY_LIMIT,
    ) -> Replay:
        """Deliver a range of past events to an endpoint again, in event order: each event the endpoint
        receives (its tenancy and `enabled_events`, narrowed by `event_types`) is queued again, or
        queued for the first time if it was never sent to it (e.g. it predates the endpoint)."""
        endpoint = await self.get(endpoint_id, scope=scope)
        if event_types:
            _check_events(event_types)
        now = self.clock.now()
        events = await self.repo.events_between(
            tenant_id=endpoint.tenant_id,
            from_seq=from_seq,
            to_seq=to_seq,
            from_time=from_time,
            to_time=to_time,
            limit=limit + 1,
        )
        more = len(events) > limit
        events = events[:limit]
        created = requeued = 0
        queued: list[WebhookDelivery] = []
        for event in events:
            type_ = webhook_type(event)
            if type_ is None or not subscribed(endpoint.enabled_events, type_):
                continue
            if event_types and not subscribed(event_types, type_):
                continue
            row = await self.repo.delivery_for(endpoint.id, event.event_id)
            if row is None:
                row = _new_delivery(endpoint, event, type_, now)
                self.repo.add(row)
                created += 1
            else:
                _requeue(row, now)
                requeued += 1
            queued.append(row)
        await self.repo.flush()
        next_seq = events[-1].seq + 1 if more and events else None
        await self._audited(
            endpoint,
            "webhook_endpoint.replayed",
            from_seq=from_seq,
            to_seq=to_seq,
            from_time=format_timestamp(from_time) if from_time else None,
            to_time=format_timestamp(to_time) if to_time else None,
            event_types=list(event_types or []),
            created=created,
            requeued=requeued,
        )
        return Replay(endpoint.id, queued, created, requeued, next_seq)


@dataclass(frozen=True, slots=True)
class Replay:
    endpoint_id: str
    deliveries: list[WebhookDelivery]
    created: int
    requeued: int
    next_from_seq: int | None  # more events in the range: replay again from here


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"


def _requeue(row: WebhookDelivery, now: datetime) -> None:
    row.status, row.attempts, row.next_attempt_at = "pending", 0, now


def _new_delivery(
    endpoint: WebhookEndpoint, event: OutboxEvent, type_: str, now: datetime
) -> WebhookDelivery:
    return WebhookDelivery(
        id=new_id("whd"),
        endpoint_id=endpoint.id,
        tenant_id=event.tenant_id,
        event_id=event.event_id,
        event_type=type_,
        seq=event.seq,
        payload=payload_of(event, type_),
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def payload_of(event: OutboxEvent, type_: str) -> str:
    body = {
        "id": event.event_id,
        "type": type_,
        "timestamp": format_timestamp(event.occurred_at),
        "customer": event.tenant_id,
        "data": event.data or {},
    }
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str)


def wants_event(event_type: str) -> bool:
    return event_type in DIRECT_TYPES or event_type.startswith(PREFIXES) or event_type == "member.updated"


def enqueue_handler(clock: Clock):  # type: ignore[no-untyped-def]
    """Relay consumer: one pending delivery per (subscribed endpoint, event), written once."""

    async def handle(session: AsyncSession, event: OutboxEvent) -> None:
        type_ = webhook_type(event)
        if type_ is None:
            return
        repo = WebhookRepository(session)
        now = clock.now()
        for endpoint in await repo.endpoints_for(event.tenant_id):
            if not subscribed(endpoint.enabled_events, type_):
                continue
            if await repo.delivery_exists(endpoint.id, event.event_id):
                continue
            repo.add(_new_delivery(endpoint, event, type_, now))
        await repo.flush()

    return handle


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    max_attempts: int = 8
    backoff_seconds: float = 30.0
    max_backoff_seconds: float = 6 * 3600.0
    timeout_seconds: float = 10.0
    batch: int = 50
    outbound: OutboundPolicy = field(default_factory=OutboundPolicy)

    def delay(self, attempts: int) -> timedelta:
        """Wait after the `attempts`-th failure: base × 2^(attempts-1), capped."""
        return timedelta(seconds=min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempts - 1)))


@dataclass(frozen=True, slots=True)
class _Outcome:
    status_code: int | None
    error: str | None  # a failure class from `failure_class`, never the internal message

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def sign_headers(secret: str, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "Tiergate-Webhooks/1",
    }


class WebhookSender:
    """Delivers due attempts. `clock` schedules retries (a test can move it); `wall_clock` stamps the
    signature, which receivers compare with their own wall clock."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        box: SecretBox,
        policy: DeliveryPolicy | None = None,
        *,
        wall_clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.box = box
        self.policy = policy or DeliveryPolicy()
        self.wall_clock = wall_clock or SystemClock()

    async def deliver_due(self) -> int:
        """One pass: attempt every due delivery once; returns the number of attempts made."""
        now = self.clock.now()
        lease = timedelta(seconds=self.policy.timeout_seconds * 2 + 5)
        async with self.db.unit_of_work() as session:
            claimed = await WebhookRepository(session).claim_due(now, self.policy.batch)
            jobs = [(d.id, d.event_id, d.payload, e.url, open_secret(self.box, e)) for d, e in claimed]
            endpoint_of = [e.id for _, e in claimed]
            # Lease: another sender will not pick these up until the attempt had time to finish.
            for delivery, _ in claimed:
                delivery.next_attempt_at = now + lease
        if not jobs:
            return 0
        # Per endpoint, in event order: one attempt at a time, and the first failure stops that
        # endpoint's queue for this pass (the later ones wait behind its retry).
        queues: dict[str, list[tuple[str, str, str, str, str]]] = {}
        for job, endpoint_id in zip(jobs, endpoint_of, strict=True):
            queues.setdefault(endpoint_id, []).append(job)
        async with guarded_client(self.policy.outbound, self.policy.timeout_seconds) as client:
            results = await asyncio.gather(*(self._send_queue(client, queue) for queue in queues.values()))
        outcomes = {delivery_id: outcome for result in results for delivery_id, outcome in result}
        async with self.db.unit_of_work() as session:
            repo = WebhookRepository(session)
            for delivery_id, *_ in jobs:
                row = await repo.delivery(delivery_id)
                if row is None:  # the endpoint was deleted meanwhile
                    continue
                outcome = outcomes.get(delivery_id)
                if outcome is None:  # held behind a failure in its queue: due again, not attempted
                    row.next_attempt_at = now
                    continue
                self._record(row, outcome, now)
        return len(outcomes)

    async def _send_queue(
        self, client: httpx.AsyncClient, queue: list[tuple[str, str, str, str, str]]
    ) -> list[tuple[str, _Outcome]]:
        done: list[tuple[str, _Outcome]] = []
        for delivery_id, event_id, body, url, secret in queue:
            outcome = await self._send(client, url, secret, event_id, body)
            done.append((delivery_id, outcome))
            if not outcome.ok:
                break
        return done

    async def _send(
        self, client: httpx.AsyncClient, url: str, secret: str, msg_id: str, body: str
    ) -> _Outcome:
        headers = sign_headers(secret, msg_id, self.wall_clock.now(), body)
        try:
            response = await client.post(
                url,
                content=body.encode(),
                headers=headers,
                timeout=self.policy.timeout_seconds,
                follow_redirects=False,
            )
        except httpx.HTTPError as exc:
            log.info("webhook attempt %s failed: %s", msg_id, failure_class(exc))
            return _Outcome(None, failure_class(exc))
        if response.is_success:
            return _Outcome(response.status_code, None)
        return _Outcome(response.status_code, failure_class(status_code=response.status_code))

    def _record(self, row: WebhookDelivery, outcome: _Outcome, now: datetime) -> None:
        row.attempts += 1
        row.last_attempt_at = now
        row.last_status_code = outcome.status_code
        row.last_error = outcome.error
        if outcome.ok:
            row.status, row.delivered_at, row.next_attempt_at = "delivered", now, None
        elif row.attempts >= self.policy.max_attempts:
            row.status, row.next_attempt_at = "failed", None
        else:
            row.next_attempt_at = now + self.policy.delay(row.attempts)
