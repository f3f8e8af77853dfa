"""The console's operations pages (issue #14 "Audit log with filters; jobs with their state"):

- `GET /admin/audit` (audit:read, as `GET /v1/audit_log`): the audit log newest first, filtered by actor,
  action (a prefix: `admin.` is every console action), customer and a time range; 50 a page with a cursor.
- `GET /admin/jobs` (operations:read, as `/health/ready` and `/metrics`): this replica's readiness (the
  database, Redis, the decision index, the relay), every background job with its schedule and its runs on
  this replica (the Prometheus counters), each relay consumer's position and how far it is behind, and the
  work waiting: e-mails, webhook deliveries and dunning runs by status.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.service import AuditService
from gateway.db.outbox import OutboxEvent
from gateway.dunning.models import DunningRun
from gateway.health.http import readiness
from gateway.kernel.clock import Clock
from gateway.kernel.errors import DomainError, ValidationFailed
from gateway.kernel.pagination import decode_cursor
from gateway.notifications.email_models import EmailMessage
from gateway.notifications.models import WebhookDelivery
from gateway.notifications.relay import OutboxConsumer
from gateway.observability.metrics import JOB_RUNS
from gateway.web.timestamps import parse_timestamp
from gateway.webui.pages import render_page

AUDIT_PAGE = 50
Filter = Annotated[str, QueryParameter(max_length=100)]


@get("/audit", summary="The audit log, newest first, with filters")
async def audit_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    actor: Filter = "",
    action: Filter = "",
    customer: Filter = "",
    since: Filter = "",
    until: Filter = "",
    after: Annotated[str, QueryParameter(max_length=200)] = "",
) -> Template:
    filters = {"actor": actor, "action": action, "customer": customer, "since": since, "until": until}
    errors: dict[str, str] = {}
    entries: Sequence[Any] = []
    cursor = None
    try:
        start = parse_timestamp(since.strip() or None, "since")
    except DomainError as exc:
        errors["since"], start = exc.detail, None
    try:
        end = parse_timestamp(until.strip() or None, "until")
    except DomainError as exc:
        errors["until"], end = exc.detail, None
    if not errors:
        try:
            last = decode_cursor(after) if after else None
        except (DomainError, ValueError):
            raise ValidationFailed("malformed cursor", field="after") from None
        page = await AuditService(session, clock).list(
            scope=None,
            after=last,
            limit=AUDIT_PAGE,
            actor=actor.strip() or None,
            action=action.strip() or None,
            tenant_id=customer.strip() or None,
            since=start,
            until=end,
            newest_first=True,
        )
        entries, cursor = page.items, page.next_cursor
    return render_page(
        request,
        "admin/audit.html",
        {"entries": entries, "cursor": cursor, "filters": filters, "errors": errors},
        package="admin",
        status_code=422 if errors else 200,
    )


def _runs(job: str, outcome: str) -> int:
    return int(JOB_RUNS.labels(job, outcome)._value.get())


async def _by_status(session: AsyncSession, column: Any) -> dict[str, int]:
    rows = (await session.execute(select(column, func.count()).group_by(column))).all()
    return {str(status): int(count) for status, count in rows}


@get("/jobs", summary="Readiness, background jobs, relay consumers and the work waiting")
async def jobs_page(
    request: Request[Any, Any, Any],
    session: NamedDependency[AsyncSession],
    state: State,
) -> Template:
    health = await readiness(state)
    jobs = [
        {
            "name": name,
            "cron": cron,
            "family": family,
            "ok": _runs(name, "ok"),
            "failed": _runs(name, "failed"),
            "cancelled": _runs(name, "cancelled"),
        }
        for name, cron, family in state.job_specs
    ]
    top = int(await session.scalar(select(func.max(OutboxEvent.seq))) or 0)
    consumers = [
        {"name": name, "position": int(seq), "behind": max(0, top - int(seq)), "updated_at": updated}
        for name, seq, updated in (
            await session.execute(
                select(OutboxConsumer.name, OutboxConsumer.last_seq, OutboxConsumer.updated_at).order_by(
                    OutboxConsumer.name
                )
            )
        ).all()
    ]
    queues = {
        "emails": await _by_status(session, EmailMessage.status),
        "webhooks": await _by_status(session, WebhookDelivery.status),
        "dunning": await _by_status(session, DunningRun.status),
    }
    return render_page(
        request,
        "admin/jobs.html",
        {"health": health, "jobs": jobs, "consumers": consumers, "top": top, "queues": queues},
        package="admin",
    )


ROUTES = [audit_page, jobs_page]
