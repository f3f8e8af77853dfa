"""Catalog use cases: products, features, plans with versioned grants, prices, add-ons."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.catalog.domain import (
    FeatureKind,
    Grant,
    PlanKind,
    PriceTerms,
    parse_price_terms,
    terms_to_plain,
    validate_alert_thresholds,
    validate_grant,
    validate_price_meter,
)
from gateway.catalog.errors import (
    FeatureNotFound,
    KeyAlreadyExists,
    PlanNotFound,
    PriceNotFound,
    ProductNotFound,
)
from gateway.catalog.models import Feature, Plan, PlanGrant, PlanVersion, Price, Product
from gateway.catalog.repository import CatalogRepository
from gateway.catalog.translations import check_name_translations
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,99}$")


def check_key(key: str, field: str = "key") -> str:
    if not KEY_PATTERN.match(key):
        raise ValidationFailed(
            f"{field} must be 1-100 characters of a-z, 0-9, '_', '-', '.', starting with a letter or digit",
            field=field,
        )
    return key


@dataclass(frozen=True, slots=True)
class GrantInput:
    feature: str  # feature key
    limit: int | str | None = None
    soft: bool = False


@dataclass(frozen=True, slots=True)
class PlanTerms:
    """A plan version's full terms, for subscriptions and entitlements."""

    plan: Plan
    version: PlanVersion
    grants: tuple[Grant, ...]


def price_terms(price: Price) -> PriceTerms:
    """Rebuild validated terms from a stored price (stored prices were validated when created)."""
    return parse_price_terms(
        model=price.model,
        interval=price.interval,
        currency_options=price.currency_options,
        usage_type=price.usage_type,
        package_size=price.package_size,
        package_rounding=price.package_rounding,
        metered_feature=price.metered_feature,
        alignment=price.alignment,
    )


class CatalogService:
    def __init__(self, repository: CatalogRepository, clock: Clock) -> None:
        self.repo = repository
        self.clock = clock

    async def _event(self, type_: str, aggregate_type: str, aggregate_id: str, data: dict[str, Any]) -> None:
        await record_event(
            self.repo.session,
            DomainEvent(type_, aggregate_type, aggregate_id, self.clock.now(), data=data),
        )

    # products -----------------------------------------------------------------------------------
    async def create_product(
        self, *, name: str, description: str | None = None, metadata: dict[str, Any] | None = None
    ) -> Product:
        now = self.clock.now()
        product = Product(
            id=new_id("prod"),
            name=name,
            description=description,
            active=True,
            metadata_=metadata or {},
            created_at=now,
            updated_at=now,
        )
        self.repo.add(product)
        await self.repo.flush()
        await self._event("product.created", "product", product.id, {"name": name})
        return product

    async def get_product(self, product_id: str) -> Product:
        product = await self.repo.get_product(product_id)
        if product is None:
            raise ProductNotFound(f"no product {product_id!r}")
        return product

    async def update_product(self, product_id: str, changes: dict[str, Any]) -> Product:
        product = await self.get_product(product_id)
        for name in ("name", "description", "active"):
            if name in changes:
                setattr(product, name, changes[name])
        if "name_translations" in changes:
            product.name_translations = check_name_translations(changes["name_translations"])
        if "metadata" in changes:
            product.metadata_ = changes["metadata"]
        product.updated_at = self.clock.now()
        await self.repo.flush()
        await self._event("product.updated", "product", product.id, {"changed": sorted(changes)})
        return product

    async def list_products(self, *, after: str | None, limit: int, active: bool | None) -> Page[Product]:
        rows = await self.repo.list_products(after=after, limit=limit, active=active)
        return Page.from_overfetch(rows, limit)

    # features -----------------------------------------------------------------------------------
    async def create_feature(
        self,
        *,
        key: str,
        name: str,
        kind: str,
        unit: str | None = None,
        description: str | None = None,
        meter: str | None = None,
        alert_thresholds: list[int] | None = None,
    ) -> Feature:
        check_key(key)
        try:
            feature_kind = FeatureKind(kind)
        except ValueError:
            raise ValidationFailed(f"unknown feature kind {kind!r}", field="kind") from None
        if feature_kind is not FeatureKind.METERED:
            if meter is not None:
                raise ValidationFailed("only metered features read a meter", field="meter")
            if alert_thresholds is not None:
                raise ValidationFailed("only metered features have usage alerts", field="alert_thresholds")
        if meter is not None:
            meter = await self._meter(meter)
        thresholds = validate_alert_thresholds(alert_thresholds)
        if await self.repo.get_feature(key) is not None:
            raise KeyAlreadyExists(f"a feature with key {key!r} exists already", field="key")
        feature = Feature(
            id=new_id("feat"),
            key=key,
            name=name,
            kind=feature_kind.value,
            unit=unit,
            description=description,
            created_at=self.clock.now(),
            meter=meter,
            alert_thresholds=thresholds,
        )
        self.repo.add(feature)
        await self.repo.flush()
        await self._event("feature.created", "feature", feature.id, {"key": key, "kind": kind})
        return feature

    async def _meter(self, id_or_key: str) -> str:
        """A meter named by id or key, stored by key (stable, readable); 422 when there is none."""
        key = await self.repo.meter_key(id_or_key)
        if key is None:
            raise ValidationFailed(f"no meter {id_or_key!r}", field="meter", code="meter_not_found")
        return key

    async def get_feature(self, id_or_key: str) -> Feature:
        feature = await self.repo.get_feature(id_or_key)
        if feature is None:
            raise FeatureNotFound(f"no feature {id_or_key!r}")
        return feature

    async def list_features(self, *, after: str | None, limit: int) -> Page[Feature]:
        return Page.from_overfetch(await self.repo.list_features(after=after, limit=limit), limit)

    # plans --------------------------------------------------------------------------------------
    async def _grant_rows(self, version_id: str, grants: Sequence[GrantInput]) -> list[PlanGrant]:
        keys = [g.feature for g in grants]
        if len(set(keys)) != len(keys):
            raise ValidationFailed("a feature may be granted only once per plan", field="grants")
        features = await self.repo.features_by_key(keys)
        rows = []
        for i, grant in enumerate(grants):
            feature = features.get(grant.feature)
            if feature is None:
                raise ValidationFailed(
                    f"grants[{i}]: unknown feature {grant.feature!r}", field=f"grants[{i}]"
                )
            limit = validate_grant(FeatureKind(feature.kind), grant.limit, grant.soft)
            rows.append(
                PlanGrant(
                    id=new_id("grant"),
                    plan_version_id=version_id,
                    feature_id=feature.id,
                    limit=limit,
                    soft=grant.soft,
                )
            )
        return rows

    async def create_plan(
        self,
        *,
        product_id: str,
        key: str,
        name: str,
        kind: str = PlanKind.BASE,
        description: str | None = None,
        rank: int = 0,
        trial_days: int | None = None,
        custom_pricing: bool = False,
        compatible_plans: Sequence[str] = (),
        grants: Sequence[GrantInput] = (),
        metadata: dict[str, Any] | None = None,
        proration_behavior: str | None = None,
    ) -> Plan:
        check_key(key)
        try:
            plan_kind = PlanKind(kind)
        except ValueError:
            raise ValidationFailed(f"unknown plan kind {kind!r}", field="kind") from None
        product = await self.get_product(product_id)
        if await self.repo.get_plan(key) is not None:
            raise KeyAlreadyExists(f"a plan with key {key!r} exists already", field="key")
        if plan_kind is PlanKind.BASE and compatible_plans:
            raise ValidationFailed("only add-ons have compatible_plans", field="compatible_plans")
        for other in compatible_plans:
            target = await self.repo.get_plan(other)
            if target is None or target.kind != PlanKind.BASE:
                raise ValidationFailed(
                    f"compatible plan {other!r} is not a base plan", field="compatible_plans"
                )
        now = self.clock.now()
        plan = Plan(
            id=new_id("plan"),
            product_id=product.id,
            key=key,
            name=name,
            description=description,
            kind=plan_kind.value,
            active=True,
            rank=rank,
            trial_days=trial_days,
            custom_pricing=custom_pricing,
            compatible_plans=list(compatible_plans),
            proration_behavior=proration_behavior,
            current_version=1,
            metadata_=metadata or {},
            created_at=now,
            updated_at=now,
        )
        version = PlanVersion(id=new_id("planv"), plan_id=plan.id, version=1, note="initial", created_at=now)
        self.repo.add(plan)
        self.repo.add(version)
        await self.repo.flush()
        for row in await self._grant_rows(version.id, grants):
            self.repo.add(row)
        await self.repo.flush()
        await self._event("plan.created", "plan", plan.id, {"key": key, "version": 1})
        return plan

    async def get_plan(self, id_or_key: str) -> Plan:
        plan = await self.repo.get_plan(id_or_key)
        if plan is None:
            raise PlanNotFound(f"no plan {id_or_key!r}")
        return plan

    async def list_plans(
        self, *, after: str | None, limit: int, kind: str | None, product_id: str | None, active: bool | None
    ) -> Page[Plan]:
        rows = await self.repo.list_plans(
            after=after, limit=limit, kind=kind, product_id=product_id, active=active
        )
        return Page.from_overfetch(rows, limit)

    async def update_plan(self, id_or_key: str, changes: dict[str, Any]) -> Plan:
        """Descriptive changes only; what a plan grants changes through `publish_grants` (new version)."""
        plan = await self.get_plan(id_or_key)
        for name in ("name", "description", "active", "rank", "trial_days", "proration_behavior"):
            if name in changes:
                setattr(plan, name, changes[name])
        if "name_translations" in changes:
            plan.name_translations = check_name_translations(changes["name_translations"])
        if "metadata" in changes:
            plan.metadata_ = changes["metadata"]
        plan.updated_at = self.clock.now()
        await self.repo.flush()
        await self._event("plan.updated", "plan", plan.id, {"changed": sorted(changes)})
        return plan

    async def publish_grants(
        self, id_or_key: str, grants: Sequence[GrantInput], note: str | None
    ) -> PlanVersion:
        """Create version N+1 with these grants. Subscribers on earlier versions keep their terms."""
        plan = await self.repo.get_plan_for_update(id_or_key)
        if plan is None:
            raise PlanNotFound(f"no plan {id_or_key!r}")
        now = self.clock.now()
        version = PlanVersion(
            id=new_id("planv"), plan_id=plan.id, version=plan.current_version + 1, note=note, created_at=now
        )
        self.repo.add(version)
        await self.repo.flush()
        for row in await self._grant_rows(version.id, grants):
            self.repo.add(row)
        plan.current_version = version.version
        plan.updated_at = now
        await self.repo.flush()
        await self._event(
            "plan.version_published", "plan", plan.id, {"key": plan.key, "version": version.version}
        )
        return version

    async def list_versions(self, id_or_key: str) -> list[PlanTerms]:
        plan = await self.get_plan(id_or_key)
        return [await self._terms(plan, v) for v in await self.repo.list_versions(plan.id)]

    async def terms(self, id_or_key: str, version: int | None = None) -> PlanTerms:
        plan = await self.get_plan(id_or_key)
        row = await self.repo.get_version(plan.id, version or plan.current_version)
        if row is None:
            raise PlanNotFound(f"plan {plan.key!r} has no version {version}")
        return await self._terms(plan, row)

    async def terms_by_version_id(self, version_id: str) -> PlanTerms:
        row = await self.repo.get_version_by_id(version_id)
        if row is None:
            raise PlanNotFound(f"no plan version {version_id!r}")
        return await self._terms(await self.get_plan(row.plan_id), row)

    async def _terms(self, plan: Plan, version: PlanVersion) -> PlanTerms:
        grants = tuple(
            Grant(feature_key=f.key, kind=FeatureKind(f.kind), limit=g.limit, soft=g.soft)
            for g, f in await self.repo.grants_of(version.id)
        )
        return PlanTerms(plan=plan, version=version, grants=grants)

    # prices -------------------------------------------------------------------------------------
    async def create_price(
        self,
        *,
        plan_id: str,
        model: str,
        interval: str,
        currency_options: dict[str, Any],
        usage_type: str | None = None,
        package_size: int | None = None,
        package_rounding: str | None = None,
        metered_feature: str | None = None,
        meter: str | None = None,
        usage_group_by: list[str] | None = None,
        alignment: str | None = None,
        lookup_key: str | None = None,
        nickname: str | None = None,
        tax_behavior: str | None = None,
    ) -> Price:
        plan = await self.get_plan(plan_id)
        if tax_behavior not in (None, "inclusive", "exclusive"):
            raise ValidationFailed("tax_behavior is inclusive or exclusive", field="tax_behavior")
        terms = parse_price_terms(
            model=model,
            interval=interval,
            currency_options=currency_options,
            usage_type=usage_type,
            package_size=package_size,
            package_rounding=package_rounding,
            metered_feature=metered_feature,
            alignment=alignment,
        )
        if meter is not None:
            meter = await self._meter(meter)
        if terms.metered_feature:
            feature = await self.repo.get_feature(terms.metered_feature)
            if feature is None or feature.kind != FeatureKind.METERED:
                raise ValidationFailed("metered_feature must name a metered feature", field="metered_feature")
            if meter is not None and feature.meter is not None and meter != feature.meter:
                raise ValidationFailed(
                    f"the metered feature reads meter {feature.meter!r}, not {meter!r}", field="meter"
                )
            meter = meter or feature.meter
        meter, usage_group_by = validate_price_meter(terms.usage_type, meter, usage_group_by)
        if lookup_key is not None:
            check_key(lookup_key, "lookup_key")
            if await self.repo.lookup_key_taken(lookup_key):
                raise KeyAlreadyExists(f"lookup_key {lookup_key!r} is taken", field="lookup_key")
        price = Price(
            id=new_id("price"),
            plan_id=plan.id,
            lookup_key=lookup_key,
            nickname=nickname,
            model=terms.model.value,
            interval=terms.interval.value,
            usage_type=terms.usage_type.value,
            alignment=terms.alignment.value,
            currency_options=terms_to_plain(terms),
            package_size=terms.package_size,
            package_rounding=terms.package_rounding.value,
            metered_feature=terms.metered_feature,
            meter=meter,
            usage_group_by=usage_group_by,
            active=True,
            created_at=self.clock.now(),
            tax_behavior=tax_behavior,
        )
        self.repo.add(price)
        await self.repo.flush()
        await self._event("price.created", "price", price.id, {"plan": plan.key, "interval": price.interval})
        return price

    async def get_price(self, id_or_lookup: str) -> Price:
        price = await self.repo.get_price(id_or_lookup)
        if price is None:
            raise PriceNotFound(f"no price {id_or_lookup!r}")
        return price

    async def update_price(self, id_or_lookup: str, changes: dict[str, Any]) -> Price:
        """Amounts are immutable (create a new price instead); only nickname, lookup_key, active change."""
        price = await self.get_price(id_or_lookup)
        if "lookup_key" in changes and changes["lookup_key"] != price.lookup_key:
            new_key = changes["lookup_key"]
            if new_key is not None:
                check_key(new_key, "lookup_key")
                if await self.repo.lookup_key_taken(new_key):
                    raise KeyAlreadyExists(f"lookup_key {new_key!r} is taken", field="lookup_key")
            price.lookup_key = new_key
        for name in ("nickname", "active"):
            if name in changes:
                setattr(price, name, changes[name])
        await self.repo.flush()
        await self._event("price.updated", "price", price.id, {"changed": sorted(changes)})
        return price

    async def list_prices(
        self, *, after: str | None, limit: int, plan_id: str | None, active: bool | None, currency: str | None
    ) -> Page[Price]:
        if plan_id:
            plan_id = (await self.get_plan(plan_id)).id
        rows = await self.repo.list_prices(
            after=after, limit=limit, plan_id=plan_id, active=active, currency=currency
        )
        return Page.from_overfetch(rows, limit)

    async def ensure_price_usable(self, price: Price, *, for_plan_kind: PlanKind) -> Plan:
        plan = await self.get_plan(price.plan_id)
        if not price.active or not plan.active:
            raise Conflict(f"price {price.id} is archived and cannot be subscribed to", code="price_inactive")
        if plan.kind != for_plan_kind:
            raise ValidationFailed(
                f"price {price.id} belongs to a {plan.kind} plan, expected {for_plan_kind}"
            )
        return plan
