"""Catalog endpoints under /v1: products, features, plans (and add-ons), plan versions, prices."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import schemas as s
from gateway.catalog.repository import CatalogRepository
from gateway.catalog.service import CatalogService, GrantInput
from gateway.kernel.clock import Clock
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.schemas import changes_of

READ = {"scope": "catalog:read"}
WRITE = {"scope": "catalog:write"}
ActiveFilter = Annotated[bool | None, QueryParameter(name="active", required=False)]


def provide_catalog(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> CatalogService:
    return CatalogService(CatalogRepository(session), clock)


def _grants(items: list[s.GrantIn]) -> list[GrantInput]:
    return [GrantInput(feature=g.feature, limit=g.limit, soft=g.soft) for g in items]


class ProductController(Controller):
    path = "/products"
    tags = ["catalog"]
    dependencies = {"catalog": Provide(provide_catalog, sync_to_thread=False)}

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a product")
    async def create(
        self, data: JSONBody[s.ProductCreate], catalog: NamedDependency[CatalogService]
    ) -> s.Product:
        row = await catalog.create_product(
            name=data.name, description=data.description, metadata=data.metadata
        )
        return s.Product.of(row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List products")
    async def list_(
        self,
        catalog: NamedDependency[CatalogService],
        page: NamedDependency[ListParams],
        active: ActiveFilter = None,
    ) -> s.ProductList:
        result = await catalog.list_products(after=page.after, limit=page.limit, active=active)
        return s.ProductList(
            [s.Product.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{product_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a product")
    async def retrieve(
        self, product_id: FromPath[str], catalog: NamedDependency[CatalogService]
    ) -> s.Product:
        return s.Product.of(await catalog.get_product(product_id))

    @patch("/{product_id:str}", opt=WRITE, responses=ERROR_RESPONSES, summary="Update a product")
    async def update(
        self,
        product_id: FromPath[str],
        data: JSONBody[s.ProductUpdate],
        catalog: NamedDependency[CatalogService],
    ) -> s.Product:
        return s.Product.of(await catalog.update_product(product_id, changes_of(data)))


class FeatureController(Controller):
    path = "/features"
    tags = ["catalog"]
    dependencies = {"catalog": Provide(provide_catalog, sync_to_thread=False)}

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a feature (boolean, gauge or metered)")
    async def create(
        self, data: JSONBody[s.FeatureCreate], catalog: NamedDependency[CatalogService]
    ) -> s.Feature:
        row = await catalog.create_feature(
            key=data.key, name=data.name, kind=data.kind, unit=data.unit, description=data.description
        )
        return s.Feature.of(row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List features")
    async def list_(
        self, catalog: NamedDependency[CatalogService], page: NamedDependency[ListParams]
    ) -> s.FeatureList:
        result = await catalog.list_features(after=page.after, limit=page.limit)
        return s.FeatureList(
            [s.Feature.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{feature:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a feature by id or key")
    async def retrieve(self, feature: FromPath[str], catalog: NamedDependency[CatalogService]) -> s.Feature:
        return s.Feature.of(await catalog.get_feature(feature))


class PlanController(Controller):
    path = "/plans"
    tags = ["catalog"]
    dependencies = {"catalog": Provide(provide_catalog, sync_to_thread=False)}

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a plan (tier) or add-on with its grants")
    async def create(self, data: JSONBody[s.PlanCreate], catalog: NamedDependency[CatalogService]) -> s.Plan:
        row = await catalog.create_plan(
            product_id=data.product,
            key=data.key,
            name=data.name,
            kind=data.kind,
            description=data.description,
            rank=data.rank,
            trial_days=data.trial_days,
            custom_pricing=data.custom_pricing,
            compatible_plans=data.compatible_plans,
            grants=_grants(data.grants),
            metadata=data.metadata,
        )
        return s.Plan.of(row, await catalog.terms(row.id))

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List plans and add-ons")
    async def list_(
        self,
        catalog: NamedDependency[CatalogService],
        page: NamedDependency[ListParams],
        active: ActiveFilter = None,
        kind: Annotated[str | None, QueryParameter(name="kind", pattern="^(base|addon)$")] = None,
        product: Annotated[str | None, QueryParameter(name="product", max_length=40)] = None,
    ) -> s.PlanList:
        result = await catalog.list_plans(
            after=page.after, limit=page.limit, kind=kind, product_id=product, active=active
        )
        data = [s.Plan.of(r, await catalog.terms(r.id)) for r in result.items]
        return s.PlanList(data, result.next_cursor is not None, result.next_cursor)

    @get("/{plan:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a plan by id or key")
    async def retrieve(self, plan: FromPath[str], catalog: NamedDependency[CatalogService]) -> s.Plan:
        row = await catalog.get_plan(plan)
        return s.Plan.of(row, await catalog.terms(row.id))

    @patch("/{plan:str}", opt=WRITE, responses=ERROR_RESPONSES, summary="Update a plan's description")
    async def update(
        self, plan: FromPath[str], data: JSONBody[s.PlanUpdate], catalog: NamedDependency[CatalogService]
    ) -> s.Plan:
        row = await catalog.update_plan(plan, changes_of(data))
        return s.Plan.of(row, await catalog.terms(row.id))

    @post(
        "/{plan:str}/versions",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Publish new grants as the plan's next version (existing subscribers keep theirs)",
    )
    async def publish(
        self, plan: FromPath[str], data: JSONBody[s.GrantsPublish], catalog: NamedDependency[CatalogService]
    ) -> s.PlanVersion:
        version = await catalog.publish_grants(plan, _grants(data.grants), data.note)
        return s.version_out(await catalog.terms(plan, version.version))

    @get("/{plan:str}/versions", opt=READ, responses=ERROR_RESPONSES, summary="List a plan's versions")
    async def versions(
        self, plan: FromPath[str], catalog: NamedDependency[CatalogService]
    ) -> s.PlanVersionList:
        return s.PlanVersionList([s.version_out(t) for t in await catalog.list_versions(plan)])


class PriceController(Controller):
    path = "/prices"
    tags = ["catalog"]
    dependencies = {"catalog": Provide(provide_catalog, sync_to_thread=False)}

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a price for a plan")
    async def create(
        self, data: JSONBody[s.PriceCreate], catalog: NamedDependency[CatalogService]
    ) -> s.Price:
        row = await catalog.create_price(
            plan_id=data.plan,
            model=data.model,
            interval=data.interval,
            currency_options=data.currency_options_plain(),
            usage_type=data.usage_type,
            package_size=data.package_size,
            package_rounding=data.package_rounding,
            metered_feature=data.metered_feature,
            alignment=data.alignment,
            lookup_key=data.lookup_key,
            nickname=data.nickname,
        )
        return s.Price.of(row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List prices")
    async def list_(
        self,
        catalog: NamedDependency[CatalogService],
        page: NamedDependency[ListParams],
        active: ActiveFilter = None,
        plan: Annotated[str | None, QueryParameter(name="plan", max_length=100)] = None,
        currency: Annotated[str | None, QueryParameter(name="currency", pattern="^[A-Z]{3}$")] = None,
    ) -> s.PriceList:
        result = await catalog.list_prices(
            after=page.after, limit=page.limit, plan_id=plan, active=active, currency=currency
        )
        return s.PriceList(
            [s.Price.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{price:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a price by id or lookup key")
    async def retrieve(self, price: FromPath[str], catalog: NamedDependency[CatalogService]) -> s.Price:
        return s.Price.of(await catalog.get_price(price))

    @patch(
        "/{price:str}", opt=WRITE, responses=ERROR_RESPONSES, summary="Update a price (amounts are immutable)"
    )
    async def update(
        self, price: FromPath[str], data: JSONBody[s.PriceUpdate], catalog: NamedDependency[CatalogService]
    ) -> s.Price:
        return s.Price.of(await catalog.update_price(price, changes_of(data)))


CONTROLLERS = [ProductController, FeatureController, PlanController, PriceController]
