"""`/v1/experiments`: price experiments (platform keys and staff), and `/v1/checkout_sessions`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from msgspec import Meta, Struct, field
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.http import provide_catalog
from gateway.catalog.service import CatalogService
from gateway.customers.http import provide_customers
from gateway.kernel.clock import Clock
from gateway.portal.checkout_service import CheckoutService
from gateway.portal.experiment_models import CheckoutSession, Experiment
from gateway.portal.experiment_service import ExperimentService, VariantResult
from gateway.subscriptions.http import provide_subscriptions
from gateway.subscriptions.service import SubscriptionService
from gateway.web.problems import ERROR_RESPONSES

Ref = Annotated[str, Meta(min_length=1, max_length=200)]
Key = Annotated[str, Meta(min_length=1, max_length=40)]
Url = Annotated[str, Meta(min_length=1, max_length=2000)]
Country = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Za-z]{2}$")]
Currency = Annotated[str, Meta(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")]


def provide_experiments(
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    catalog: NamedDependency[CatalogService],
) -> ExperimentService:
    return ExperimentService(session, clock, catalog)


def provide_checkout(
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    catalog: NamedDependency[CatalogService],
    customers: NamedDependency[Any],
    subscriptions: NamedDependency[SubscriptionService],
    experiments: NamedDependency[ExperimentService],
) -> CheckoutService:
    return CheckoutService(session, clock, catalog, customers, subscriptions, experiments)


DEPENDENCIES = {
    "catalog": Provide(provide_catalog, sync_to_thread=False),
    "customers": Provide(provide_customers, sync_to_thread=False),
    "subscriptions": Provide(provide_subscriptions, sync_to_thread=False),
    "experiments": Provide(provide_experiments, sync_to_thread=False),
    "checkout": Provide(provide_checkout, sync_to_thread=False),
}


# ---- experiments ---------------------------------------------------------------------------------------


class VariantIn(Struct, forbid_unknown_fields=True):
    key: Key
    weight: Annotated[int, Meta(ge=1, le=10_000)]
    # A price the pricing page and checkout show → the price shown instead (same plan and interval).
    prices: Annotated[dict[Ref, Ref], Meta(max_length=20)] = field(default_factory=dict)
    trial_days: Annotated[int, Meta(ge=0, le=730)] | None = None


class TargetingIn(Struct, forbid_unknown_fields=True):
    countries: Annotated[list[Country], Meta(max_length=50)] = field(default_factory=list)
    currencies: Annotated[list[Currency], Meta(max_length=20)] = field(default_factory=list)
    new_visitors_only: bool = False


class ExperimentCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    product: Ref
    variants: Annotated[list[VariantIn], Meta(min_length=2, max_length=10)]
    targeting: TargetingIn | None = None


class ExperimentOut(Struct):
    id: str
    object: Literal["experiment"]
    name: str
    product: str
    status: str
    variants: list[dict[str, Any]]
    targeting: dict[str, Any]
    winner: str | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    promoted_at: datetime | None

    @classmethod
    def of(cls, row: Experiment) -> ExperimentOut:
        return cls(
            row.id, "experiment", row.name, row.product_id, row.status, list(row.variants),
            dict(row.targeting), row.winner, row.created_at, row.started_at, row.stopped_at, row.promoted_at,
        )  # fmt: skip


class ExperimentList(Struct):
    object: Literal["list"]
    data: list[ExperimentOut]


class AssignmentIn(Struct, forbid_unknown_fields=True):
    visitor_key: Ref
    country: Country | None = None
    currency: Currency | None = None
    new_visitor: bool = True


class AssignmentOut(Struct):
    object: Literal["experiment_assignment"]
    experiment: str
    visitor_key: str
    variant: str | None  # None: not in the experiment (not running, or left out by its targeting)
    prices: dict[str, str]
    trial_days: int | None


class PromoteIn(Struct, forbid_unknown_fields=True):
    variant: Key


class VariantResultOut(Struct):
    variant: str
    visitors: int
    checkouts_started: int
    checkouts_completed: int
    conversion: float
    conversion_ci_low: float
    conversion_ci_high: float
    p_value: float | None
    mrr: dict[str, int]
    arpa: dict[str, int]
    churned: int

    @classmethod
    def of(cls, r: VariantResult) -> VariantResultOut:
        return cls(
            r.key, r.visitors, r.checkouts_started, r.checkouts_completed, r.conversion, r.conversion_low,
            r.conversion_high, r.p_value, r.mrr, r.arpa, r.churned,
        )  # fmt: skip


class ResultsOut(Struct):
    object: Literal["experiment_results"]
    experiment: str
    status: str
    confidence: float
    test: str
    variants: list[VariantResultOut]


class ExperimentController(Controller):
    path = "/experiments"
    tags = ["experiments"]
    dependencies = DEPENDENCIES

    @post("/", responses=ERROR_RESPONSES, summary="Create a price experiment (a draft)")
    async def create(
        self, data: JSONBody[ExperimentCreate], experiments: NamedDependency[ExperimentService]
    ) -> ExperimentOut:
        row = await experiments.create(
            name=data.name,
            product=data.product,
            variants=[{"key": v.key, "weight": v.weight, "prices": v.prices, "trial_days": v.trial_days}
                      for v in data.variants],
            targeting=None if data.targeting is None else {
                "countries": data.targeting.countries,
                "currencies": data.targeting.currencies,
                "new_visitors_only": data.targeting.new_visitors_only,
            },
        )  # fmt: skip
        return ExperimentOut.of(row)

    @get("/", responses=ERROR_RESPONSES, summary="List price experiments")
    async def list_(self, experiments: NamedDependency[ExperimentService]) -> ExperimentList:
        return ExperimentList("list", [ExperimentOut.of(r) for r in await experiments.list_all()])

    @get("/{experiment_id:str}", responses=ERROR_RESPONSES, summary="Get a price experiment")
    async def get_(
        self, experiment_id: FromPath[str], experiments: NamedDependency[ExperimentService]
    ) -> ExperimentOut:
        return ExperimentOut.of(await experiments.get(experiment_id[:40]))

    @post(
        "/{experiment_id:str}/start", status_code=200, responses=ERROR_RESPONSES, summary="Start (or resume)"
    )
    async def start(
        self, experiment_id: FromPath[str], experiments: NamedDependency[ExperimentService]
    ) -> ExperimentOut:
        return ExperimentOut.of(await experiments.start(experiment_id[:40]))

    @post("/{experiment_id:str}/stop", status_code=200, responses=ERROR_RESPONSES, summary="Stop")
    async def stop(
        self, experiment_id: FromPath[str], experiments: NamedDependency[ExperimentService]
    ) -> ExperimentOut:
        return ExperimentOut.of(await experiments.stop(experiment_id[:40]))

    @post(
        "/{experiment_id:str}/assignments",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="The variant a visitor or customer key sees (sticky: the same key, the same variant)",
    )
    async def assign(
        self,
        experiment_id: FromPath[str],
        data: JSONBody[AssignmentIn],
        experiments: NamedDependency[ExperimentService],
    ) -> AssignmentOut:
        row = await experiments.get(experiment_id[:40])
        variant = await experiments.assign_visitor(
            row, data.visitor_key, country=data.country, currency=data.currency, new_visitor=data.new_visitor
        )
        return AssignmentOut(
            "experiment_assignment",
            row.id,
            data.visitor_key,
            variant.key if variant else None,
            dict(variant.prices) if variant else {},
            variant.trial_days if variant else None,
        )

    @get("/{experiment_id:str}/results", responses=ERROR_RESPONSES, summary="Results per variant")
    async def results(
        self,
        experiment_id: FromPath[str],
        experiments: NamedDependency[ExperimentService],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> ResultsOut:
        row = await experiments.get(experiment_id[:40])
        results = await experiments.results(row.id, subscriptions)
        return ResultsOut(
            "experiment_results", row.id, row.status, 0.95, "fisher_exact_two_sided",
            [VariantResultOut.of(r) for r in results],
        )  # fmt: skip

    @post(
        "/{experiment_id:str}/promote",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Promote a variant into the catalog (a new plan version; subscribers keep their prices)",
    )
    async def promote(
        self,
        experiment_id: FromPath[str],
        data: JSONBody[PromoteIn],
        experiments: NamedDependency[ExperimentService],
    ) -> ExperimentOut:
        return ExperimentOut.of(await experiments.promote(experiment_id[:40], data.variant))


# ---- checkout sessions ----------------------------------------------------------------------------------


class CheckoutSessionCreate(Struct, forbid_unknown_fields=True):
    success_url: Url
    product: Ref | None = None
    price: Ref | None = None
    cancel_url: Url | None = None
    customer: Ref | None = None
    currency: Currency | None = None
    trial_days: Annotated[int, Meta(ge=0, le=730)] | None = None
    allow_promotion_codes: bool = True
    locale: Annotated[str, Meta(min_length=2, max_length=10)] | None = None
    # The app's visitor (or customer) key: checkout applies the variant of a running experiment.
    visitor_key: Ref | None = None


class CheckoutSessionOut(Struct):
    id: str
    object: Literal["checkout_session"]
    status: str
    product: str
    price: str | None
    currency: str | None
    customer: str | None
    subscription: str | None
    success_url: str
    cancel_url: str | None
    trial_days: int | None
    allow_promotion_codes: bool
    experiment: str | None
    variant: str | None
    promotion_code: str | None
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None
    url: str | None = None  # only in the response that created it (the token is stored hashed)

    @classmethod
    def of(cls, row: CheckoutSession, url: str | None = None) -> CheckoutSessionOut:
        return cls(
            row.id, "checkout_session", row.status, row.product_id, row.price_id, row.currency,
            row.customer_id, row.subscription_id, row.success_url, row.cancel_url, row.trial_days,
            row.allow_promotion_codes, row.experiment_id, row.variant, row.promotion_code, row.created_at,
            row.expires_at, row.completed_at, url,
        )  # fmt: skip


def base_url(request: Request[Any, Any, Any]) -> str:
    configured: str = getattr(request.app.state.settings, "public_base_url", "") or ""
    return (configured or str(request.base_url)).rstrip("/")


class CheckoutSessionController(Controller):
    path = "/checkout_sessions"
    tags = ["checkout"]
    dependencies = DEPENDENCIES

    @post("/", responses=ERROR_RESPONSES, summary="Open a hosted checkout; answers its one-time URL")
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[CheckoutSessionCreate],
        checkout: NamedDependency[CheckoutService],
        experiments: NamedDependency[ExperimentService],
    ) -> CheckoutSessionOut:
        price, experiment_id, variant_key = data.price, None, None
        if data.visitor_key:
            price, experiment_id, variant_key = await variant_price(
                experiments, data.product, data.price, data.visitor_key, currency=data.currency
            )
        opened = await checkout.create(
            product=data.product,
            price=price,
            success_url=data.success_url,
            cancel_url=data.cancel_url,
            customer=data.customer,
            currency=data.currency,
            trial_days=data.trial_days,
            allow_promotion_codes=data.allow_promotion_codes,
            locale=data.locale,
            visitor_key=data.visitor_key,
            experiment_id=experiment_id,
            variant=variant_key,
        )
        return CheckoutSessionOut.of(opened.session, f"{base_url(request)}/checkout/{opened.token}")

    @get("/{session_id:str}", responses=ERROR_RESPONSES, summary="Get a checkout session")
    async def get_(
        self, session_id: FromPath[str], checkout: NamedDependency[CheckoutService]
    ) -> CheckoutSessionOut:
        return CheckoutSessionOut.of(await checkout.get(session_id[:40]))


async def variant_price(
    experiments: ExperimentService,
    product: str | None,
    price: str | None,
    visitor_key: str,
    *,
    currency: str | None = None,
    country: str | None = None,
    new_visitor: bool = False,
) -> tuple[str | None, str | None, str | None]:
    """(price, experiment, variant) for a visitor: the first running experiment of the product that takes
    the visitor, with the variant's replacement for `price`."""
    if product is None and price is None:
        return price, None, None
    if product is None:
        assert price is not None
        plan = await experiments.catalog.get_plan((await experiments.catalog.get_price(price)).plan_id)
        product = plan.product_id
    product_id = (await experiments.catalog.get_product(product)).id
    for experiment in await experiments.running_for_product(product_id):
        variant = await experiments.assign_visitor(
            experiment, visitor_key, country=country, currency=currency, new_visitor=new_visitor
        )
        if variant is not None:
            replaced = variant.prices.get(price or "", price) if price else None
            if price and price not in variant.prices:
                shown = await experiments.catalog.get_price(price)
                replaced = variant.prices.get(shown.id, shown.id)
            return replaced, experiment.id, variant.key
    return price, None, None


CONTROLLERS = [ExperimentController, CheckoutSessionController]
