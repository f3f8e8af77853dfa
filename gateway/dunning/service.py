"""Dunning at work: campaigns (CRUD and which one applies), the `dunning` outbox consumer that reacts to
payments and invoices, and the job that makes the retries that are due.

Flow (see domain.py for the rules):
* `payment.failed` on an invoice that is dunned (a subscription's, charged automatically, not its first:
  that one makes the subscription `incomplete` instead) starts a run: the campaign's rules are copied
  into it, a renewal's subscription becomes `past_due` with the campaign's access, the step's e-mail is
  asked for. A later failure of a dunning attempt schedules the next slot, a fallback, or exhausts it.
* The job (`run_due`, in the relay's tick and after a test clock moves) takes each due attempt under the
  run's row lock, commits, then charges through payments' Collector outside any transaction (which also
  refuses a second attempt while one is in flight: never two at once).
* `invoice.paid` recovers the run (the subscription is `active` again); `invoice.voided`,
  `invoice.marked_uncollectible`, and the subscription ending stop it. No attempt after any of them.
* `payment_method.attached|updated` makes one retry due at once (and re-admits an updated method).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.billing.models import Invoice
from gateway.billing.wiring import BillingConfig
from gateway.customers.models import Customer
from gateway.db.outbox import OutboxEvent, record_event
from gateway.dunning.domain import (
    HARD_DECLINES,
    WAITS_FOR_UPDATER,
    FinalAction,
    Rules,
    RunStatus,
    after_failure,
    default_emails,
    is_due,
    method_changed,
    schedule_next,
    take_due,
    validate_rules,
)
from gateway.dunning.models import DunningCampaign, DunningOverride, DunningRun
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.payments.collection import Collector
from gateway.payments.providers.registry import ProviderRegistry
from gateway.payments.service import PaymentService, PaymentSettings

log = logging.getLogger("tiergate.dunning")

# Events the consumer reads (the rest of the outbox is skipped cheaply).
WANTED = frozenset(
    {
        "payment.failed",
        "invoice.paid",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "subscription.canceled",
        "subscription.expired",
        "subscription.incomplete_expired",
        "payment_method.attached",
        "payment_method.updated",
    }
)
STOPPING = {
    "invoice.voided": "invoice_voided",
    "invoice.marked_uncollectible": "invoice_uncollectible",
    "subscription.canceled": "subscription_canceled",
    "subscription.expired": "subscription_ended",
    "subscription.incomplete_expired": "subscription_ended",
}
PENDING = "pending"  # `last_payment_id` while a dunning attempt's answer is awaited


def wants(event_type: str) -> bool:
    return event_type in WANTED


def is_dunned(invoice: Invoice) -> bool:
    """Invoices dunning retries: a subscription's, charged automatically, past its first (a failed first
    invoice makes the subscription `incomplete`; gateway/payments). The e-mail package asks the same
    question to leave the failed-payment mail of these invoices to the campaign."""
    return (
        invoice.subscription_id is not None
        and invoice.collection_method == "charge_automatically"
        and invoice.billing_reason != "subscription_create"
    )


class CampaignNotFound(NotFound):
    code = "dunning_campaign_not_found"


class DunningService:
    def __init__(self, core: PaymentService) -> None:
        self.core = core
        self.session = core.session
        self.clock = core.clock

    # -- campaigns -----------------------------------------------------------------------------------
    async def create_campaign(self, fields: dict[str, Any]) -> DunningCampaign:
        rules = _rules_of(fields)
        now = self.clock.now()
        campaign = DunningCampaign(id=new_id("dcmp"), name=fields["name"], created_at=now, updated_at=now)
        _store(campaign, rules)
        campaign.is_default = bool(fields.get("is_default"))
        self.session.add(campaign)
        await self.session.flush()
        if campaign.is_default:
            await self._only_default(campaign)
        return campaign

    async def update_campaign(self, campaign_id: str, fields: dict[str, Any]) -> DunningCampaign:
        campaign = await self.get_campaign(campaign_id)
        current = _rules_from_row(campaign)
        merged = {**_fields_of(campaign, current), **{k: v for k, v in fields.items() if v is not None}}
        rules = _rules_of(merged)
        _store(campaign, rules)
        campaign.name = merged["name"]
        if fields.get("is_default") is not None:
            campaign.is_default = bool(fields["is_default"])
        campaign.updated_at = self.clock.now()
        await self.session.flush()
        if campaign.is_default:
            await self._only_default(campaign)
        return campaign

    async def _only_default(self, campaign: DunningCampaign) -> None:
        for other in (
            await self.session.scalars(select(DunningCampaign).where(DunningCampaign.is_default))
        ).all():
            if other.id != campaign.id:
                other.is_default = False
        await self.session.flush()

    async def get_campaign(self, campaign_id: str) -> DunningCampaign:
        campaign = await self.session.get(DunningCampaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"no dunning campaign {campaign_id!r}")
        return campaign

    async def list_campaigns(self) -> Sequence[DunningCampaign]:
        return (
            await self.session.scalars(select(DunningCampaign).order_by(DunningCampaign.created_at))
        ).all()

    async def set_override(
        self, *, campaign_id: str, plan: str | None, customer: str | None
    ) -> DunningOverride:
        await self.get_campaign(campaign_id)
        if (plan is None) == (customer is None):
            raise ValidationFailed("name exactly one of plan or customer", field="plan")
        if customer is not None and await self.session.get(Customer, customer) is None:
            raise NotFound(f"no customer {customer!r}", code="customer_not_found")
        query = select(DunningOverride).where(
            DunningOverride.plan_key == plan if plan is not None else DunningOverride.customer_id == customer
        )
        override = (await self.session.scalars(query)).first()
        if override is None:
            override = DunningOverride(
                id=new_id("dovr"), plan_key=plan, customer_id=customer, created_at=self.clock.now()
            )
            self.session.add(override)
        override.campaign_id = campaign_id
        await self.session.flush()
        return override

    async def list_overrides(self) -> Sequence[DunningOverride]:
        return (
            await self.session.scalars(select(DunningOverride).order_by(DunningOverride.created_at))
        ).all()

    async def delete_override(self, override_id: str) -> None:
        override = await self.session.get(DunningOverride, override_id)
        if override is None:
            raise NotFound(f"no dunning override {override_id!r}", code="dunning_override_not_found")
        await self.session.delete(override)
        await self.session.flush()

    async def rules_for(self, customer_id: str, plan_key: str | None) -> tuple[str | None, Rules]:
        """The campaign that applies: the customer's override, else its plan's, else the default one,
        else the built-in default (Stripe's 8 tries in 2 weeks, cancel at the end, access kept)."""
        for column, value in (
            (DunningOverride.customer_id, customer_id),
            (DunningOverride.plan_key, plan_key),
        ):
            if value is None:
                continue
            override = (await self.session.scalars(select(DunningOverride).where(column == value))).first()
            if override is not None:
                campaign = await self.get_campaign(override.campaign_id)
                return campaign.id, _rules_from_row(campaign)
        default = (
            await self.session.scalars(select(DunningCampaign).where(DunningCampaign.is_default))
        ).first()
        if default is not None:
            return default.id, _rules_from_row(default)
        return None, Rules()

    # -- runs ----------------------------------------------------------------------------------------
    async def run_of_invoice(self, invoice_id: str, *, for_update: bool = False) -> DunningRun | None:
        query = select(DunningRun).where(DunningRun.invoice_id == invoice_id)
        if for_update:
            query = query.with_for_update()
        return (await self.session.scalars(query)).first()

    async def _methods(self, customer_id: str) -> list[str]:
        return [m.id for m in await self.core.repo.methods_of(customer_id, active_only=True)]

    async def handle(self, event: OutboxEvent) -> None:
        data = event.data or {}
        if event.type == "payment.failed":
            await self._payment_failed(data["payment"], event.occurred_at)
        elif event.type == "invoice.paid":
            await self._invoice_paid(data["invoice"]["id"], event.occurred_at)
        elif event.type in ("invoice.voided", "invoice.marked_uncollectible"):
            run = await self.run_of_invoice(data["invoice"]["id"], for_update=True)
            if run is not None:
                await self._stop(run, STOPPING[event.type], event.occurred_at)
        elif event.type.startswith("subscription."):
            sub_id = event.aggregate_id
            runs = await self._active_runs(DunningRun.subscription_id == sub_id)
            for run in runs:
                await self._stop(run, STOPPING[event.type], event.occurred_at)
        elif event.type.startswith("payment_method."):
            method = data["payment_method"]
            # New details from the account updater (a new expiry) re-admit a card this run set aside.
            renewed = event.type.endswith("updated") and data.get("change") == "account_updater"
            await self._method_changed(method["customer"], method["id"], renewed)

    async def _active_runs(self, *where: Any) -> Sequence[DunningRun]:
        query = (
            select(DunningRun).where(DunningRun.status == RunStatus.ACTIVE.value, *where).with_for_update()
        )
        return (await self.session.scalars(query)).all()

    async def _payment_failed(self, payment: dict[str, Any], at: datetime) -> None:
        invoice_id = payment.get("invoice")
        if not invoice_id:
            return
        run = await self.run_of_invoice(invoice_id, for_update=True)
        decline, method = payment.get("decline_code"), payment.get("payment_method")
        if run is None:
            invoice = await self.core.billing.invoices.get(invoice_id, scope=None)
            if not is_dunned(invoice) or invoice.status != "open" or invoice.amount_remaining <= 0:
                return
            await self._start(invoice, decline, method, at)
            return
        if run.status != RunStatus.ACTIVE.value:
            return
        rules = Rules.from_json(run.rules)
        if run.last_payment_id not in (PENDING, payment["id"]):
            # Not dunning's attempt (the customer paying by hand): only what it says about the method.
            if (
                method is not None
                and method not in run.excluded_methods
                and decline in HARD_DECLINES | WAITS_FOR_UPDATER
            ):
                run.excluded_methods = [*run.excluded_methods, method]
            await self.session.flush()
            return
        run.last_payment_id = payment["id"]
        outcome = after_failure(
            run, rules, decline_code=decline, method=method, methods=await self._methods(run.tenant_id)
        )
        if outcome.fallback:
            run.next_attempt_at = at
        await self._touch(run, at)
        if outcome.email:
            await self._email(run, outcome.email, at)
        await self._event("dunning.attempt_failed", run, at, decline_code=decline, payment=payment["id"])
        if outcome.exhausted:
            await self._exhaust(run, rules, at)

    async def _start(self, invoice: Invoice, decline: str | None, method: str | None, at: datetime) -> None:
        subscriptions = self.core.billing.subscriptions
        assert invoice.subscription_id is not None
        sub = await subscriptions.get(invoice.subscription_id, for_update=True)
        plan = await self.core.billing.catalog.get_plan(sub.plan_id)
        campaign_id, rules = await self.rules_for(invoice.tenant_id, plan.key)
        # A renewal of the period that is running narrows access; an add-on's or a change's invoice never
        # blocks a period already paid for (billing-rules rule 30).
        narrows = invoice.billing_reason == "subscription_cycle"
        run = DunningRun(
            id=new_id("dun"),
            tenant_id=invoice.tenant_id,
            invoice_id=invoice.id,
            subscription_id=invoice.subscription_id,
            campaign_id=campaign_id,
            rules=rules.to_json(),
            status=RunStatus.ACTIVE.value,
            narrows_access=narrows,
            started_at=at,
            slots_done=0,
            attempts=0,
            immediate=False,
            excluded_methods=[],
            amount_due=invoice.amount_remaining,
            currency=invoice.currency,
            recovered_amount=0,
            test_clock_id=sub.test_clock_id,
            created_at=at,
            updated_at=at,
            version=1,
        )
        self.session.add(run)
        outcome = after_failure(
            run, rules, decline_code=decline, method=method, methods=await self._methods(run.tenant_id)
        )
        if outcome.fallback:
            run.next_attempt_at = at
        await self.session.flush()
        if narrows:
            await subscriptions.mark_past_due(
                sub,
                at,
                access=rules.subscription_access(),
                revoked_features=list(rules.revoked_features),
                invoice=invoice.id,
                dunning_run=run.id,
            )
        await self._event("dunning.started", run, at, decline_code=decline)
        if outcome.email:
            await self._email(run, outcome.email, at)
        if outcome.exhausted:
            await self._exhaust(run, rules, at)

    async def _invoice_paid(self, invoice_id: str, at: datetime) -> None:
        run = await self.run_of_invoice(invoice_id, for_update=True)
        if run is None or run.status not in (RunStatus.ACTIVE.value, RunStatus.EXHAUSTED.value):
            return
        invoice = await self.core.billing.invoices.get(invoice_id, scope=None)
        was_exhausted = run.status == RunStatus.EXHAUSTED.value
        run.status = RunStatus.RECOVERED.value
        run.recovered_amount = invoice.amount_paid
        run.next_attempt_at = None
        run.ended_at = at
        await self._touch(run, at)
        await self._event(
            "dunning.recovered",
            run,
            at,
            amount=invoice.amount_paid,
            after_exhaustion=was_exhausted,
            seconds_to_recover=int((at - run.started_at).total_seconds()),
        )
        await self._give_access_back(run, at)

    async def _stop(self, run: DunningRun, reason: str, at: datetime) -> None:
        if run.status != RunStatus.ACTIVE.value:
            return
        run.status = RunStatus.STOPPED.value
        run.stop_reason = reason
        run.next_attempt_at = None
        run.ended_at = at
        await self._touch(run, at)
        await self._event("dunning.stopped", run, at, reason=reason)
        if reason in ("invoice_voided", "invoice_uncollectible"):
            await self._give_access_back(run, at)

    async def _give_access_back(self, run: DunningRun, at: datetime) -> None:
        """The invoice that narrowed access no longer does (paid, voided, uncollectible): the subscription is
        `active` again, unless another renewal of it is still in dunning."""
        if not run.narrows_access or run.subscription_id is None:
            return
        still = await self._active_runs(
            DunningRun.subscription_id == run.subscription_id, DunningRun.narrows_access.is_(True)
        )
        if not still:
            subscriptions = self.core.billing.subscriptions
            sub = await subscriptions.get(run.subscription_id, for_update=True)
            await subscriptions.recover(sub, at, invoice=run.invoice_id, dunning_run=run.id)

    async def _exhaust(self, run: DunningRun, rules: Rules, at: datetime) -> None:
        run.status = RunStatus.EXHAUSTED.value
        run.final_action = rules.final_action.value
        run.next_attempt_at = None
        run.ended_at = at
        await self._touch(run, at)
        await self._event("dunning.exhausted", run, at, final_action=rules.final_action.value)
        if not run.narrows_access or run.subscription_id is None:
            return
        subscriptions = self.core.billing.subscriptions
        if rules.final_action is FinalAction.CANCEL:
            await subscriptions.cancel(run.subscription_id, at_period_end=False, reason="dunning_exhausted")
        elif rules.final_action is FinalAction.UNPAID:
            sub = await subscriptions.get(run.subscription_id, for_update=True)
            await subscriptions.mark_unpaid(sub, at, invoice=run.invoice_id, dunning_run=run.id)
        elif rules.final_action is FinalAction.PAUSE:
            await subscriptions.pause(run.subscription_id)

    async def _method_changed(self, customer_id: str, method_id: str, updated: bool) -> None:
        runs = await self._active_runs(DunningRun.tenant_id == customer_id)
        if not runs:
            return
        customer = await self.core.billing.customers.get(customer_id)
        now = await self.core.now_for(customer)
        for run in runs:
            if method_changed(run, method_id, updated=updated) and run.last_payment_id != PENDING:
                run.next_attempt_at = now
                await self._touch(run, now)

    async def _touch(self, run: DunningRun, at: datetime) -> None:
        run.updated_at = at
        run.version += 1
        await self.session.flush()

    async def _event(self, type_: str, run: DunningRun, at: datetime, **data: Any) -> None:
        await record_event(
            self.session,
            DomainEvent(
                type_,
                "dunning_run",
                run.id,
                at,
                data={"dunning_run": run_snapshot(run), **data},
                tenant_id=run.tenant_id,
            ),
        )

    async def _email(self, run: DunningRun, template: str, at: datetime) -> None:
        """The e-mail package sends it (gateway/notifications: `dunning.email_requested`); its button
        leads to the portal's payment methods."""
        await record_event(
            self.session,
            DomainEvent(
                "dunning.email_requested",
                "dunning_run",
                run.id,
                at,
                data={
                    "customer_id": run.tenant_id,
                    "subscription_id": run.subscription_id,
                    "invoice_id": run.invoice_id,
                    "template": template,
                    "attempt": run.attempts,
                    "next_attempt_at": run.next_attempt_at.isoformat() if run.next_attempt_at else None,
                    "amount_due": run.amount_due,
                    "currency": run.currency,
                },
                tenant_id=run.tenant_id,
            ),
        )


def run_snapshot(run: DunningRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "customer": run.tenant_id,
        "invoice": run.invoice_id,
        "subscription": run.subscription_id,
        "campaign": run.campaign_id,
        "status": run.status,
        "started_at": run.started_at.isoformat(),
        "retries_scheduled": len(run.rules["offsets_hours"]),
        "retries_taken": run.slots_done,
        "attempts": run.attempts,
        "next_attempt_at": run.next_attempt_at.isoformat() if run.next_attempt_at else None,
        "waiting_for": run.waiting_for,
        "last_decline_code": run.last_decline_code,
        "amount_due": run.amount_due,
        "currency": run.currency,
        "recovered_amount": run.recovered_amount,
        "final_action": run.final_action,
        "stop_reason": run.stop_reason,
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
    }


def _rules_of(fields: dict[str, Any]) -> Rules:
    offsets = fields.get("retry_offsets_hours") or []
    emails = fields.get("emails")
    if emails is None and offsets:
        emails = {str(k): v for k, v in default_emails(len(offsets)).items()}
    return validate_rules(
        offsets,
        emails or {},
        fields.get("final_action") or FinalAction.CANCEL.value,
        fields.get("access") or "keep",
        fields.get("read_only_role"),
        fields.get("revoked_features") or [],
    )


def _store(campaign: DunningCampaign, rules: Rules) -> None:
    data = rules.to_json()
    campaign.retry_offsets_hours = data["offsets_hours"]
    campaign.emails = data["emails"]
    campaign.final_action = data["final_action"]
    campaign.access = data["access"]
    campaign.read_only_role = data["read_only_role"]
    campaign.revoked_features = data["revoked_features"]


def _rules_from_row(campaign: DunningCampaign) -> Rules:
    return Rules.from_json(
        {
            "offsets_hours": campaign.retry_offsets_hours,
            "emails": campaign.emails,
            "final_action": campaign.final_action,
            "access": campaign.access,
            "read_only_role": campaign.read_only_role,
            "revoked_features": campaign.revoked_features,
        }
    )


def _fields_of(campaign: DunningCampaign, rules: Rules) -> dict[str, Any]:
    return {"name": campaign.name, **{**rules.to_json(), "retry_offsets_hours": list(rules.offsets_hours)}}


# ---- wiring ----------------------------------------------------------------------------------------


def consumer_handler(
    clock: Clock,
    registry: ProviderRegistry,
    billing_config: BillingConfig | None = None,
    settings: PaymentSettings | None = None,
) -> Callable[[AsyncSession, OutboxEvent], Awaitable[None]]:
    async def handle(session: AsyncSession, event: OutboxEvent) -> None:
        await DunningService(PaymentService(session, clock, registry, billing_config, settings)).handle(event)

    return handle


async def run_due(collector: Collector, *, limit: int = 200, test_clock_id: str | None = None) -> int:
    """Job: every dunning attempt that is due, each claimed under its run's row lock and committed before
    the charge (outside any transaction). Returns the charges made."""
    async with collector.db.unit_of_work(read_only=True) as session:  # each claim writes on its own
        query = (
            select(DunningRun.id)
            .where(DunningRun.status == RunStatus.ACTIVE.value, DunningRun.next_attempt_at.is_not(None))
            .order_by(DunningRun.next_attempt_at)
            .limit(limit)
        )
        if test_clock_id is not None:
            query = query.where(DunningRun.test_clock_id == test_clock_id)
        candidates = list((await session.scalars(query)).all())
    charged = 0
    for run_id in candidates:
        method = await _take(collector, run_id)
        if method is None:
            continue
        run_id_, invoice_id, method_id = method
        try:
            payment = await collector.collect(invoice_id, method_id=method_id, off_session=True)
        except Conflict as exc:
            await _not_charged(collector, run_id_, exc)
            continue
        charged += 1
        if payment is not None:
            # The attempt's answer is the consumer's to read (`payment.failed`, `invoice.paid`); it knows
            # the payment by this id (or by PENDING, if it got there first).
            async with collector.db.unit_of_work(actor="system:dunning") as session:
                run = await session.get(DunningRun, run_id_, with_for_update=True)
                if run is not None and run.last_payment_id == PENDING:
                    run.last_payment_id = payment.id
    return charged


async def _take(collector: Collector, run_id: str) -> tuple[str, str, str] | None:
    async with collector.db.unit_of_work(actor="system:dunning") as session:
        core = collector.core(session)
        service = DunningService(core)
        run = await session.get(DunningRun, run_id, with_for_update=True)
        if run is None:
            return None
        customer = await core.billing.customers.get(run.tenant_id)
        now = await core.now_for(customer)
        if not is_due(run, now) or run.last_payment_id == PENDING:
            return None
        invoice = await core.billing.invoices.get(run.invoice_id, scope=None)
        if invoice.status != "open" or invoice.amount_remaining <= 0:
            await service._stop(run, "invoice_not_payable", now)
            return None
        rules = Rules.from_json(run.rules)
        take = take_due(run, rules, await service._methods(run.tenant_id))
        if take.method is not None:
            run.last_payment_id = PENDING
        await service._touch(run, now)
        await service._event(
            "dunning.attempt" if take.method else "dunning.attempt_skipped",
            run,
            now,
            scheduled=take.slot,
            payment_method=take.method,
        )
        if take.exhausted:
            await service._exhaust(run, rules, now)
        return (run.id, run.invoice_id, take.method) if take.method else None


async def _not_charged(collector: Collector, run_id: str, exc: Conflict) -> None:
    """The collector refused before charging (the invoice was paid meanwhile, a payment is in flight, the
    method went away): nothing was attempted; the slot stays taken, the next one is scheduled."""
    async with collector.db.unit_of_work(actor="system:dunning") as session:
        core = collector.core(session)
        run = await session.get(DunningRun, run_id, with_for_update=True)
        if run is None or run.status != RunStatus.ACTIVE.value:
            return
        customer = await core.billing.customers.get(run.tenant_id)
        now = await core.now_for(customer)
        service = DunningService(core)
        run.attempts -= 1
        run.last_payment_id = None
        if exc.error_code == "invoice_not_payable":
            await service._stop(run, "invoice_not_payable", now)
            return
        rules = Rules.from_json(run.rules)
        schedule_next(run, rules)
        if run.next_attempt_at is None:
            await service._exhaust(run, rules, now)  # stamps the run itself
        else:
            await service._touch(run, now)
        log.info("dunning run %s: attempt not made (%s)", run.id, exc.error_code)
