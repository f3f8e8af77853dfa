"""Catalog endpoints under /v1: products, features, plans (and add-ons), plan versions, prices, coupons,
promotion codes."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import schemas as s
from gateway.catalog.coupons import CouponService
from gateway.catalog.domain import Checkout
from gateway.catalog.errors import CustomerNotFound
from gateway.catalog.models import Coupon as CouponRow
from gateway.catalog.models import PromotionCode as PromotionCodeRow
from gateway.catalog.ports import VersionSubscribers
from gateway.catalog.repository import CatalogRepository
from gateway.catalog.service import CatalogService, GrantInput
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES
from gateway.web.schemas import changes_of
from gateway.web.timestamps import parse_timestamp

READ = {"scope": "catalog:read"}
WRITE = {"scope": "catalog:write"}
ActiveFilter = Annotated[bool | None, QueryParameter(name="active", required=False)]


def provide_catalog(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> CatalogService:
    return CatalogService(CatalogRepository(session), clock)


def provide_coupons(session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]) -> CouponService:
    return CouponService(CatalogRepository(session), clock)


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
            key=data.key,
            name=data.name,
            kind=data.kind,
            unit=data.unit,
            description=data.description,
            meter=data.meter,
            alert_thresholds=data.alert_thresholds,
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
            proration_behavior=data.proration_behavior,
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

    @get(
        "/{plan:str}/versions",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="List a plan's versions (with their live subscribers, for platform keys and staff)",
    )
    async def versions(
        self,
        plan: FromPath[str],
        catalog: NamedDependency[CatalogService],
        principal: NamedDependency[Principal],
        version_subscribers: NamedDependency[VersionSubscribers],
    ) -> s.PlanVersionList:
        terms = await catalog.list_versions(plan)
        if principal.tenant_id is not None:  # a tenant key: the platform's customer count is not its business
            return s.PlanVersionList([s.version_out(t) for t in terms])
        counts = await version_subscribers.live_by_version(terms[0].plan.id) if terms else {}
        return s.PlanVersionList([s.version_out(t, counts.get(t.version.id, 0)) for t in terms])


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
            meter=data.meter,
            usage_group_by=data.usage_group_by,
            alignment=data.alignment,
            lookup_key=data.lookup_key,
            nickname=data.nickname,
            tax_behavior=data.tax_behavior,
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


def _coupon(coupons: CouponService, row: CouponRow) -> s.Coupon:
    return s.Coupon.of(row, valid=coupons.valid(row))


async def _promotion_codes(coupons: CouponService, rows: list[PromotionCodeRow]) -> list[s.PromotionCode]:
    by_id = await coupons.coupons_of(rows)
    return [s.PromotionCode.of(r, _coupon(coupons, by_id[r.coupon_id])) for r in rows]


class CouponController(Controller):
    """Coupons: the discount terms. Refused redemptions are 409s with a stable `code`; malformed terms
    are 422s; unknown coupons 404s."""

    path = "/coupons"
    tags = ["coupons"]
    dependencies = {"coupons": Provide(provide_coupons, sync_to_thread=False)}

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a coupon (percent or amount off)")
    async def create(
        self, data: JSONBody[s.CouponCreate], coupons: NamedDependency[CouponService]
    ) -> s.Coupon:
        row = await coupons.create_coupon(
            id=data.id,
            name=data.name,
            percent_off=data.percent_off,
            amount_off=data.amount_off,
            currency=data.currency,
            currency_options=(
                {code: option.amount_off for code, option in data.currency_options.items()}
                if data.currency_options is not None
                else None
            ),
            duration=data.duration,
            duration_in_months=data.duration_in_months,
            max_redemptions=data.max_redemptions,
            redeem_by=parse_timestamp(data.redeem_by, "redeem_by"),
            applies_to_plans=data.applies_to.plans if data.applies_to is not None else None,
            metadata=data.metadata,
        )
        return _coupon(coupons, row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List coupons")
    async def list_(
        self,
        coupons: NamedDependency[CouponService],
        page: NamedDependency[ListParams],
        active: ActiveFilter = None,
    ) -> s.CouponList:
        result = await coupons.list_coupons(after=page.after, limit=page.limit, active=active)
        return s.CouponList(
            [_coupon(coupons, r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{coupon_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a coupon")
    async def retrieve(self, coupon_id: FromPath[str], coupons: NamedDependency[CouponService]) -> s.Coupon:
        return _coupon(coupons, await coupons.get_coupon(coupon_id))

    @patch(
        "/{coupon_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Rename a coupon (terms are immutable)",
    )
    async def update(
        self,
        coupon_id: FromPath[str],
        data: JSONBody[s.CouponUpdate],
        coupons: NamedDependency[CouponService],
    ) -> s.Coupon:
        return _coupon(coupons, await coupons.update_coupon(coupon_id, changes_of(data)))

    @delete(
        "/{coupon_id:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Deactivate a coupon (discounts already redeemed keep applying)",
    )
    async def deactivate(self, coupon_id: FromPath[str], coupons: NamedDependency[CouponService]) -> s.Coupon:
        return _coupon(coupons, await coupons.delete_coupon(coupon_id))


class PromotionCodeController(Controller):
    """Customer-facing codes for coupons. A tenant-scoped key sees only codes open to anyone or reserved
    for its own customer."""

    path = "/promotion_codes"
    tags = ["coupons"]
    dependencies = {
        "coupons": Provide(provide_coupons, sync_to_thread=False),
        "catalog": Provide(provide_catalog, sync_to_thread=False),
    }

    @post("/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a promotion code for a coupon")
    async def create(
        self, data: JSONBody[s.PromotionCodeCreate], coupons: NamedDependency[CouponService]
    ) -> s.PromotionCode:
        """`code` is matched case-insensitively and generated when left out. 409 `coupon_inactive` for a
        deleted coupon, `promotion_code_already_exists` for a taken code."""
        restrictions = data.restrictions or s.RestrictionsIn()
        row = await coupons.create_promotion_code(
            coupon=data.coupon,
            code=data.code,
            active=data.active,
            max_redemptions=data.max_redemptions,
            expires_at=parse_timestamp(data.expires_at, "expires_at"),
            customer=data.customer,
            first_time_transaction=restrictions.first_time_transaction,
            minimum_amount=restrictions.minimum_amount,
            minimum_amount_currency=restrictions.minimum_amount_currency,
            metadata=data.metadata,
        )
        return (await _promotion_codes(coupons, [row]))[0]

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List promotion codes")
    async def list_(
        self,
        coupons: NamedDependency[CouponService],
        page: NamedDependency[ListParams],
        principal: NamedDependency[Principal],
        active: ActiveFilter = None,
        code: Annotated[
            str | None, QueryParameter(name="code", max_length=40, description="Case-insensitive")
        ] = None,
        coupon: Annotated[str | None, QueryParameter(name="coupon", max_length=40)] = None,
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
    ) -> s.PromotionCodeList:
        result = await coupons.list_promotion_codes(
            after=page.after,
            limit=page.limit,
            code=code,
            coupon=coupon,
            active=active,
            customer=customer,
            scope=principal.tenant_id,
        )
        data = await _promotion_codes(coupons, list(result.items))
        return s.PromotionCodeList(data, result.next_cursor is not None, result.next_cursor)

    @post(
        "/validate",
        opt=READ,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Say whether a promotion code would apply now, and why not (redeems nothing)",
    )
    async def validate(
        self,
        data: JSONBody[s.PromotionCodeValidate],
        coupons: NamedDependency[CouponService],
        catalog: NamedDependency[CatalogService],
        principal: NamedDependency[Principal],
        clock: NamedDependency[Clock],
    ) -> s.PromotionCodeValidation:
        """Runs the redemption rules without redeeming. 200 with `valid` (no refusal), `reason` (the first
        refusal's code, what a redemption now would fail with), every refusal, and the restrictions that
        need input the request left out (`unchecked`). Unknown code, plan or price: 404."""
        customer = data.customer
        if principal.tenant_id is not None:
            # A tenant key speaks for its own customer only (another one is a 404, like everywhere).
            if customer not in (None, principal.tenant_id):
                raise CustomerNotFound(f"no customer {customer!r}", field="customer")
            customer = principal.tenant_id
        plan_key, currency, amount = await _checkout_of(catalog, data)
        found = await coupons.check(
            coupon=None,
            promotion_code=data.code,
            checkout=Checkout(
                at=clock.now(),
                customer_id=customer,
                plan_key=plan_key,
                currency=currency,
                first_time=data.first_time_transaction,
                subtotal=amount,
            ),
            scope=principal.tenant_id,
        )
        assert found.promotion_code is not None
        refusals = [s.RefusalOut(r.reason.value, r.detail) for r in found.eligibility.refusals]
        return s.PromotionCodeValidation(
            "promotion_code_validation",
            not refusals,
            found.promotion_code.code,
            found.promotion_code.id,
            _coupon(coupons, found.coupon),
            refusals[0].code if refusals else None,
            refusals,
            [u.value for u in found.eligibility.unchecked],
        )

    @get("/{promotion_code:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a promotion code")
    async def retrieve(
        self,
        promotion_code: FromPath[str],
        coupons: NamedDependency[CouponService],
        principal: NamedDependency[Principal],
    ) -> s.PromotionCode:
        row = await coupons.get_promotion_code(promotion_code, scope=principal.tenant_id)
        return (await _promotion_codes(coupons, [row]))[0]

    @patch(
        "/{promotion_code:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Activate or deactivate a promotion code, or change its metadata",
    )
    async def update(
        self,
        promotion_code: FromPath[str],
        data: JSONBody[s.PromotionCodeUpdate],
        coupons: NamedDependency[CouponService],
        principal: NamedDependency[Principal],
    ) -> s.PromotionCode:
        row = await coupons.update_promotion_code(promotion_code, changes_of(data), scope=principal.tenant_id)
        return (await _promotion_codes(coupons, [row]))[0]


async def _checkout_of(
    catalog: CatalogService, data: s.PromotionCodeValidate
) -> tuple[str | None, str | None, int | None]:
    """Plan key, currency and amount of the checkout described by a validate request."""
    currency = data.currency.upper() if data.currency else None
    amount = data.amount
    if data.price is not None:
        price = await catalog.get_price(data.price)
        plan = await catalog.get_plan(price.plan_id)
        if data.plan is not None and (await catalog.get_plan(data.plan)).id != plan.id:
            raise ValidationFailed("price belongs to another plan than plan", field="price")
        options = price.currency_options
        if currency is None and len(options) == 1:
            currency = next(iter(options))
        if currency is not None and currency not in options:
            raise ValidationFailed(f"price {price.id} has no amount in {currency}", field="currency")
        if amount is None and currency is not None and price.model == "flat":
            # A flat price's amount is the first invoice's subtotal before discounts and taxes.
            amount = int(Decimal(options[currency]["unit_amount"]))
        return plan.key, currency, amount
    if data.plan is not None:
        return (await catalog.get_plan(data.plan)).key, currency, amount
    return None, currency, amount


CONTROLLERS = [
    ProductController,
    FeatureController,
    PlanController,
    PriceController,
    CouponController,
    PromotionCodeController,
]
