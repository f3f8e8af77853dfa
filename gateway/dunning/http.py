"""/v1/dunning_campaigns, /v1/dunning_overrides, /v1/dunning_runs and /v1/invoices/{id}/dunning.

Campaigns and overrides are platform data (a tenant never sets its own dunning); a tenant key may read
the dunning of its own invoices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct, structs
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.dunning.domain import DEFAULT_OFFSETS_HOURS, MAX_RETRIES, Rules
from gateway.dunning.models import DunningCampaign, DunningOverride, DunningRun
from gateway.dunning.service import CampaignNotFound, DunningService, run_snapshot
from gateway.kernel.auth import Principal
from gateway.payments.http import DEPENDENCIES as PAYMENT_DEPENDENCIES
from gateway.payments.service import PaymentService
from gateway.web.problems import ERROR_RESPONSES

READ = {"scope": "billing:read"}
WRITE = {"scope": "billing:write"}

Name = Annotated[str, Meta(min_length=1, max_length=120)]
Key = Annotated[str, Meta(min_length=1, max_length=64)]
Id = Annotated[str, Meta(min_length=1, max_length=40)]
Hours = Annotated[int, Meta(ge=1, le=60 * 24)]
Template = Annotated[str, Meta(min_length=1, max_length=60)]
Step = Annotated[str, Meta(min_length=1, max_length=3, pattern=r"^[0-9]+$")]
FinalActionName = Literal["cancel", "unpaid", "pause", "keep_past_due"]
AccessName = Literal["keep", "read_only", "revoke"]


class CampaignCreate(Struct, forbid_unknown_fields=True):
    name: Name
    # What happens when retries run out: no default, a campaign says it (rule 29).
    final_action: FinalActionName
    retry_offsets_hours: Annotated[list[Hours], Meta(min_length=1, max_length=MAX_RETRIES)] = msgspec.field(
        default_factory=lambda: list(DEFAULT_OFFSETS_HOURS)
    )
    emails: Annotated[dict[Step, Template], Meta(max_length=MAX_RETRIES)] | None = None
    access: AccessName = "keep"
    read_only_role: Key | None = None
    revoked_features: Annotated[list[Key], Meta(max_length=100)] = msgspec.field(default_factory=list)
    is_default: bool = False


class CampaignUpdate(Struct, forbid_unknown_fields=True):
    name: Name | None = None
    retry_offsets_hours: Annotated[list[Hours], Meta(min_length=1, max_length=MAX_RETRIES)] | None = None
    emails: Annotated[dict[Step, Template], Meta(max_length=MAX_RETRIES)] | None = None
    final_action: FinalActionName | None = None
    access: AccessName | None = None
    read_only_role: Key | None = None
    revoked_features: Annotated[list[Key], Meta(max_length=100)] | None = None
    is_default: bool | None = None


class Campaign(Struct):
    id: str
    object: Literal["dunning_campaign"]
    name: str
    is_default: bool
    retry_offsets_hours: list[int]
    emails: dict[str, str]
    final_action: str
    access: str
    read_only_role: str | None
    revoked_features: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: DunningCampaign) -> Campaign:
        return cls(
            row.id, "dunning_campaign", row.name, row.is_default, list(row.retry_offsets_hours),
            dict(row.emails), row.final_action, row.access, row.read_only_role, list(row.revoked_features),
            row.created_at, row.updated_at,
        )  # fmt: skip


class CampaignList(Struct):
    data: list[Campaign]
    object: Literal["list"] = "list"


class OverrideCreate(Struct, forbid_unknown_fields=True):
    campaign: Id
    plan: Key | None = None
    customer: Id | None = None


class Override(Struct):
    id: str
    object: Literal["dunning_override"]
    campaign: str
    plan: str | None
    customer: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: DunningOverride) -> Override:
        return cls(row.id, "dunning_override", row.campaign_id, row.plan_key, row.customer_id, row.created_at)


class OverrideList(Struct):
    data: list[Override]
    object: Literal["list"] = "list"


class Run(Struct):
    id: str
    object: Literal["dunning_run"]
    customer: str
    invoice: str
    subscription: str | None
    campaign: str | None
    status: str
    started_at: str
    retries_scheduled: int
    retries_taken: int
    attempts: int
    next_attempt_at: str | None
    waiting_for: str | None
    last_decline_code: str | None
    amount_due: int
    currency: str
    recovered_amount: int
    final_action: str | None
    stop_reason: str | None
    ended_at: str | None
    # When each scheduled retry is (or was) due, from the rules the run started with.
    schedule: list[str]

    @classmethod
    def of(cls, row: DunningRun) -> Run:
        rules = Rules.from_json(row.rules)
        schedule = [rules.slot_at(row.started_at, k).isoformat() for k in range(1, rules.retries + 1)]
        return cls(**{"object": "dunning_run", **run_snapshot(row), "schedule": schedule})


class RunList(Struct):
    data: list[Run]
    object: Literal["list"] = "list"


def provide_dunning(payments: NamedDependency[PaymentService]) -> DunningService:
    return DunningService(payments)


DEPENDENCIES = {
    "payments": PAYMENT_DEPENDENCIES["payments"],
    "dunning": Provide(provide_dunning, sync_to_thread=False),
}


class DunningCampaignController(Controller):
    path = "/dunning_campaigns"
    tags = ["dunning"]
    dependencies = DEPENDENCIES

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a dunning campaign")
    async def create(
        self,
        data: JSONBody[CampaignCreate],
        dunning: NamedDependency[DunningService],
    ) -> Campaign:
        fields: dict[str, Any] = structs.asdict(data)
        return Campaign.of(await dunning.create_campaign(fields))

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List dunning campaigns")
    async def list_(self, dunning: NamedDependency[DunningService]) -> CampaignList:
        return CampaignList([Campaign.of(c) for c in await dunning.list_campaigns()])

    @get("/{campaign_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Get a dunning campaign")
    async def get_(
        self,
        campaign_id: FromPath[str],
        dunning: NamedDependency[DunningService],
    ) -> Campaign:
        return Campaign.of(await dunning.get_campaign(campaign_id[:40]))

    @patch(
        "/{campaign_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Change a campaign (runs already started keep the rules they started with)",
    )
    async def update(
        self,
        campaign_id: FromPath[str],
        data: JSONBody[CampaignUpdate],
        dunning: NamedDependency[DunningService],
    ) -> Campaign:
        fields: dict[str, Any] = structs.asdict(data)
        return Campaign.of(await dunning.update_campaign(campaign_id[:40], fields))


class DunningOverrideController(Controller):
    path = "/dunning_overrides"
    tags = ["dunning"]
    dependencies = DEPENDENCIES

    @post(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Use a campaign for one plan or one customer (the customer's wins over its plan's)",
    )
    async def create(
        self,
        data: JSONBody[OverrideCreate],
        dunning: NamedDependency[DunningService],
    ) -> Override:
        override = await dunning.set_override(
            campaign_id=data.campaign, plan=data.plan, customer=data.customer
        )
        return Override.of(override)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List campaign overrides")
    async def list_(self, dunning: NamedDependency[DunningService]) -> OverrideList:
        return OverrideList([Override.of(o) for o in await dunning.list_overrides()])

    @delete(
        "/{override_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Remove an override",
    )
    async def delete_(
        self,
        override_id: FromPath[str],
        dunning: NamedDependency[DunningService],
    ) -> OverrideList:
        service = dunning
        await service.delete_override(override_id[:40])
        return OverrideList([Override.of(o) for o in await service.list_overrides()])


class DunningRunController(Controller):
    path = "/dunning_runs"
    tags = ["dunning"]
    dependencies = DEPENDENCIES

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="Invoices in dunning (newest first)")
    async def list_(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer: Annotated[str | None, QueryParameter(max_length=40)] = None,
        status: Annotated[
            Literal["active", "recovered", "exhausted", "stopped"] | None, QueryParameter()
        ] = None,
    ) -> RunList:
        query = select(DunningRun).order_by(DunningRun.created_at.desc(), DunningRun.id).limit(500)
        if principal.tenant_id is not None:
            query = query.where(DunningRun.tenant_id == principal.tenant_id)
        if customer is not None:
            query = query.where(DunningRun.tenant_id == customer)
        if status is not None:
            query = query.where(DunningRun.status == status)
        return RunList([Run.of(r) for r in (await session.scalars(query)).all()])


class InvoiceDunningController(Controller):
    path = "/invoices/{invoice_id:str}/dunning"
    tags = ["dunning"]
    dependencies = DEPENDENCIES

    @get(
        "/",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="The invoice's dunning run (none, or one): retries taken and due, where it stands",
    )
    async def get_(
        self,
        invoice_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        dunning: NamedDependency[DunningService],
        principal: NamedDependency[Principal],
    ) -> RunList:
        invoice = await dunning.core.billing.invoices.get(invoice_id[:40], scope=principal.tenant_id)
        runs = (await session.scalars(select(DunningRun).where(DunningRun.invoice_id == invoice.id))).all()
        return RunList([Run.of(r) for r in runs])


CONTROLLERS = [
    DunningCampaignController,
    DunningOverrideController,
    DunningRunController,
    InvoiceDunningController,
]
__all__ = ["CONTROLLERS", "CampaignNotFound"]
