"""GET /v1/audit_log: filtered, cursor-paginated, oldest first (scope audit:read)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.models import AuditEntry as AuditRow
from gateway.audit.service import AuditService
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.timestamps import parse_timestamp


class AuditEntry(Struct):
    id: str
    object: str
    customer: str | None
    actor: str
    action: str
    target: str | None
    user: str | None
    data: dict[str, Any]
    at: datetime

    @classmethod
    def of(cls, row: AuditRow) -> AuditEntry:
        return cls(
            row.id,
            "audit_entry",
            row.tenant_id,
            row.actor,
            row.action,
            row.target,
            row.subject_user_id,
            dict(row.data),
            row.at,
        )


class AuditList(Struct):
    data: list[AuditEntry]
    has_more: bool
    next_cursor: str | None


def provide_audit(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> AuditService:
    return AuditService(session, clock)


class AuditController(Controller):
    path = "/audit_log"
    tags = ["audit"]
    dependencies = {"audit": Provide(provide_audit, sync_to_thread=False)}

    @get(
        "/",
        opt={"scope": "audit:read"},
        responses=ERROR_RESPONSES,
        summary="List audit entries (sign-ins, role changes, provisioning, policy edits, invites)",
    )
    async def list_(
        self,
        audit: NamedDependency[AuditService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
        actor: Annotated[str | None, QueryParameter(name="actor", max_length=60)] = None,
        action: Annotated[str | None, QueryParameter(name="action", max_length=80)] = None,
        target: Annotated[str | None, QueryParameter(name="target", max_length=80)] = None,
        user: Annotated[str | None, QueryParameter(name="user", max_length=40)] = None,
        since: Annotated[str | None, QueryParameter(name="since", max_length=40)] = None,
        until: Annotated[str | None, QueryParameter(name="until", max_length=40)] = None,
    ) -> AuditList:
        result = await audit.list(
            scope=principal.tenant_id,
            after=page.after,
            limit=page.limit,
            tenant_id=customer,
            actor=actor,
            action=action,
            target=target,
            user_id=user,
            since=parse_timestamp(since, "since"),
            until=parse_timestamp(until, "until"),
        )
        return AuditList(
            [AuditEntry.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )


CONTROLLERS = [AuditController]
