"""Price experiments: create, start/stop, assign visitors, results, promote the winner into the catalog.

The page (`/pricing/{product}`) and the API (`POST /v1/experiments/{id}/assignments`) assign through the
same `assign_visitor`, and checkout records its progress on the same assignment row, so the results the
API gives are the ones the page shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogService, GrantInput, price_terms
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.portal import experiment_domain as d
from gateway.portal.experiment_models import Experiment, ExperimentAssignment
from gateway.portal.experiment_stats import p_value, wilson_interval
from gateway.subscriptions.service import SubscriptionService

CHURNED = frozenset({"canceled", "expired", "incomplete_expired"})


class ExperimentNotFound(NotFound):
    code = "experiment_not_found"


class ExperimentNotRunning(Conflict):
    code = "experiment_not_running"


def variants_of(row: Experiment) -> list[d.Variant]:
    return d.parse_variants(row.variants)


def targeting_of(row: Experiment) -> d.Targeting:
    return d.parse_targeting(row.targeting)


@dataclass(frozen=True, slots=True)
class VariantResult:
    key: str
    visitors: int
    checkouts_started: int
    checkouts_completed: int
    conversion: float
    conversion_low: float
    conversion_high: float
    p_value: float | None  # against the control; None for the control itself
    mrr: dict[str, int]  # minor units per currency, of the converted
    arpa: dict[str, int]  # mrr ÷ converted customers in that currency, half-up
    churned: int  # converted whose subscription has since ended


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


class ExperimentService:
    def __init__(self, session: AsyncSession, clock: Clock, catalog: CatalogService) -> None:
        self.session = session
        self.clock = clock
        self.catalog = catalog

    async def _event(self, type_: str, row: Experiment, **data: Any) -> None:
        await record_event(
            self.session,
            DomainEvent(type_, "experiment", row.id, self.clock.now(), data={"status": row.status, **data}),
        )

    async def create(
        self,
        *,
        name: str,
        product: str,
        variants: Sequence[Mapping[str, Any]],
        targeting: Mapping[str, Any] | None = None,
    ) -> Experiment:
        product_row = await self.catalog.get_product(product)
        parsed = d.parse_variants(variants)
        for variant in parsed:
            for shown, instead in variant.prices.items():
                await self._check_override(product_row.id, shown, instead)
        now = self.clock.now()
        row = Experiment(
            id=new_id("exp"),
            name=name,
            product_id=product_row.id,
            status=d.ExperimentStatus.DRAFT,
            variants=[v.as_dict() for v in parsed],
            targeting=d.parse_targeting(targeting).as_dict(),
            winner=None,
            created_at=now,
            updated_at=now,
            started_at=None,
            stopped_at=None,
            promoted_at=None,
        )
        self.session.add(row)
        await self.session.flush()
        await self._event("experiment.created", row, name=name)
        return row

    async def _check_override(self, product_id: str, shown: str, instead: str) -> None:
        """Both prices exist, belong to this product's plans, the same plan and interval."""
        try:
            a = await self.catalog.get_price(shown)
            b = await self.catalog.get_price(instead)
        except NotFound as missing:
            raise ValidationFailed(str(missing.detail), field="variants") from None
        plan = await self.catalog.get_plan(a.plan_id)
        if plan.product_id != product_id or a.plan_id != b.plan_id or a.interval != b.interval:
            raise ValidationFailed(
                f"price {instead} may replace {shown} only for the same plan and interval of this product",
                field="variants",
            )

    async def get(self, experiment_id: str, *, for_update: bool = False) -> Experiment:
        query = select(Experiment).where(Experiment.id == experiment_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).scalar_one_or_none()
        if row is None:
            raise ExperimentNotFound(f"no experiment {experiment_id!r}")
        return row

    async def list_all(self, *, product_id: str | None = None, status: str | None = None) -> list[Experiment]:
        query = select(Experiment).order_by(Experiment.created_at, Experiment.id)
        if product_id:
            query = query.where(Experiment.product_id == product_id)
        if status:
            query = query.where(Experiment.status == status)
        return list((await self.session.execute(query.limit(100))).scalars())

    async def _move(self, experiment_id: str, target: d.ExperimentStatus) -> Experiment:
        row = await self.get(experiment_id, for_update=True)
        row.status = d.transition(row.status, target)
        now = self.clock.now()
        row.updated_at = now
        if target is d.ExperimentStatus.RUNNING:
            row.started_at = row.started_at or now
            row.stopped_at = None
        elif target is d.ExperimentStatus.STOPPED:
            row.stopped_at = now
        await self.session.flush()
        return row

    async def start(self, experiment_id: str) -> Experiment:
        row = await self._move(experiment_id, d.ExperimentStatus.RUNNING)
        await self._event("experiment.started", row)
        return row

    async def stop(self, experiment_id: str) -> Experiment:
        row = await self._move(experiment_id, d.ExperimentStatus.STOPPED)
        await self._event("experiment.stopped", row)
        return row

    # ---- visitors -------------------------------------------------------------------------------------

    async def assign_visitor(
        self,
        experiment: Experiment,
        visitor_key: str,
        *,
        country: str | None = None,
        currency: str | None = None,
        new_visitor: bool = True,
    ) -> d.Variant | None:
        """The variant this visitor sees, recorded once; None when the experiment is not running or its
        targeting leaves the visitor out (then the catalog's own prices apply). A visitor seen before keeps
        its variant whatever the targeting says now (sticky)."""
        if experiment.status != d.ExperimentStatus.RUNNING:
            return None
        variants = variants_of(experiment)
        known = await self._assignment(experiment.id, visitor_key)
        if known is not None:
            return next((v for v in variants if v.key == known.variant), None)
        if not targeting_of(experiment).admits(country=country, currency=currency, new_visitor=new_visitor):
            return None
        variant = d.assign(experiment.id, visitor_key, variants)
        row = ExperimentAssignment(
            id=new_id("expa"),
            experiment_id=experiment.id,
            visitor_key=visitor_key,
            variant=variant.key,
            assigned_at=self.clock.now(),
            checkout_started_at=None,
            completed_at=None,
            customer_id=None,
            subscription_id=None,
            mrr=None,
            currency=None,
        )
        try:
            async with self.session.begin_nested():
                self.session.add(row)
        except IntegrityError:
            pass  # a concurrent request recorded the same visitor; the hash gave it the same variant
        return variant

    async def _assignment(self, experiment_id: str, visitor_key: str) -> ExperimentAssignment | None:
        query = select(ExperimentAssignment).where(
            ExperimentAssignment.experiment_id == experiment_id,
            ExperimentAssignment.visitor_key == visitor_key,
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def running_for_product(self, product_id: str) -> list[Experiment]:
        return await self.list_all(product_id=product_id, status=d.ExperimentStatus.RUNNING)

    async def checkout_started(self, experiment_id: str, visitor_key: str) -> None:
        row = await self._assignment(experiment_id, visitor_key)
        if row is not None and row.checkout_started_at is None:
            row.checkout_started_at = self.clock.now()

    async def converted(
        self,
        experiment_id: str,
        visitor_key: str,
        *,
        customer_id: str,
        subscription_id: str,
        mrr: int,
        currency: str,
    ) -> None:
        row = await self._assignment(experiment_id, visitor_key)
        if row is None or row.completed_at is not None:
            return
        now = self.clock.now()
        row.checkout_started_at = row.checkout_started_at or now
        row.completed_at = now
        row.customer_id, row.subscription_id, row.mrr, row.currency = (
            customer_id,
            subscription_id,
            mrr,
            currency,
        )

    # ---- results and the winner -----------------------------------------------------------------------

    async def results(self, experiment_id: str, subscriptions: SubscriptionService) -> list[VariantResult]:
        experiment = await self.get(experiment_id)
        rows = list(
            (
                await self.session.execute(
                    select(ExperimentAssignment).where(ExperimentAssignment.experiment_id == experiment.id)
                )
            ).scalars()
        )
        counts: dict[str, tuple[int, int]] = {}
        results: list[VariantResult] = []
        variants = variants_of(experiment)
        for variant in variants:
            mine = [r for r in rows if r.variant == variant.key]
            done = [r for r in mine if r.completed_at is not None]
            counts[variant.key] = (len(done), len(mine))
            mrr: dict[str, int] = {}
            customers: dict[str, int] = {}
            churned = 0
            for r in done:
                if r.currency and r.mrr is not None:
                    mrr[r.currency] = mrr.get(r.currency, 0) + r.mrr
                    customers[r.currency] = customers.get(r.currency, 0) + 1
                if r.subscription_id:
                    sub = await subscriptions.get(r.subscription_id)
                    churned += sub.status in CHURNED
            low, high = wilson_interval(len(done), len(mine))
            results.append(
                VariantResult(
                    key=variant.key,
                    visitors=len(mine),
                    checkouts_started=sum(1 for r in mine if r.checkout_started_at is not None),
                    checkouts_completed=len(done),
                    conversion=len(done) / len(mine) if mine else 0.0,
                    conversion_low=low,
                    conversion_high=high,
                    p_value=None,
                    mrr=mrr,
                    arpa={c: _round(Decimal(m) / customers[c]) for c, m in mrr.items()},
                    churned=churned,
                )
            )
        control = counts[variants[0].key]
        return [r if i == 0 else _with_p(r, p_value(control, counts[r.key])) for i, r in enumerate(results)]

    async def promote(self, experiment_id: str, variant_key: str) -> Experiment:
        """Make a variant the catalog's offer: each price it shows instead takes over the replaced price's
        lookup key (the replaced price is archived; its subscribers keep it, prices are immutable), its
        trial becomes the plan's, and each touched plan publishes a new version (same grants, a note
        naming the experiment) so the change is on the plan's record. The experiment must be stopped."""
        experiment = await self.get(experiment_id, for_update=True)
        variant = next((v for v in variants_of(experiment) if v.key == variant_key), None)
        if variant is None:
            raise ValidationFailed(
                f"experiment {experiment.id} has no variant {variant_key!r}", field="variant"
            )
        experiment.status = d.transition(experiment.status, d.ExperimentStatus.PROMOTED)
        plans: dict[str, None] = {}
        for shown, instead in variant.prices.items():
            old = await self.catalog.get_price(shown)
            new = await self.catalog.get_price(instead)
            lookup_key = old.lookup_key
            await self.catalog.update_price(old.id, {"active": False, "lookup_key": None})
            await self.session.flush()
            await self.catalog.update_price(new.id, {"active": True, "lookup_key": lookup_key})
            plans[old.plan_id] = None
        if variant.trial_days is not None:
            for plan in await self._product_plans(experiment.product_id):
                plans[plan] = None
        for plan_id in plans:
            if variant.trial_days is not None:
                await self.catalog.update_plan(plan_id, {"trial_days": variant.trial_days or None})
            terms = await self.catalog.terms(plan_id)
            grants = [_same_grant(g) for g in terms.grants]
            await self.catalog.publish_grants(
                plan_id, grants, note=f"experiment {experiment.id}: variant {variant.key} promoted"
            )
        now = self.clock.now()
        experiment.winner, experiment.promoted_at, experiment.updated_at = variant.key, now, now
        await self.session.flush()
        await self._event("experiment.promoted", experiment, winner=variant.key)
        return experiment

    async def _product_plans(self, product_id: str) -> list[str]:
        page = await self.catalog.list_plans(
            after=None, limit=100, product_id=product_id, kind="base", active=None
        )
        return [p.id for p in page.items]


def _with_p(result: VariantResult, p: float | None) -> VariantResult:
    return VariantResult(**{**{f: getattr(result, f) for f in VariantResult.__slots__}, "p_value": p})


def _same_grant(grant: Any) -> GrantInput:
    """A published grant as input for the next version (None on a gauge or meter is unlimited)."""
    limit: int | str | None = grant.limit
    if limit is None and grant.kind != "boolean":
        limit = "unlimited"
    return GrantInput(feature=grant.feature_key, limit=limit, soft=grant.soft)


def monthly_value(price: Any, currency: str) -> int:
    """A price's monthly value in minor units (rule 32: yearly ÷ 12), rounded half-up."""
    return _round(price_terms(price).monthly_amount(currency))
