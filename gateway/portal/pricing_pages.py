"""The public pricing page (`/pricing/{product}`), the hosted checkout page (`/checkout/{token}`) and the
operators' experiment results page (`/experiments/{id}`). They hold no rule: the catalog, the experiment
and checkout services decide, exactly as the API's `/v1/experiments` and `/v1/checkout_sessions` do.

The visitor key is the `tg_visitor` cookie (random, set on the first visit); a visitor without one is a
new visitor for an experiment's targeting."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template

from gateway.catalog import CatalogService, RedemptionRefused, price_terms
from gateway.catalog.models import Plan, Price
from gateway.kernel.errors import DomainError, NotFound
from gateway.portal.checkout_service import BillingDetails, CheckoutService
from gateway.portal.experiment_http import DEPENDENCIES, base_url
from gateway.portal.experiment_service import ExperimentService
from gateway.subscriptions.service import SubscriptionService
from gateway.webui.pages import page_router, render_page

VISITOR_COOKIE = "tg_visitor"
# Accept-Language regions whose visitors see euros where the catalog has them.
EURO_REGIONS = frozenset("AT BE CY DE EE ES FI FR GR HR IE IT LT LU LV MT NL PT SI SK".split())


@dataclass
class Offer:
    price: Price
    amount: int
    interval: str


@dataclass
class Tier:
    plan: Plan
    month: Offer | None = None
    year: Offer | None = None
    trial_days: int | None = None
    features: dict[str, str] = field(default_factory=dict)  # feature key → shown limit ("" = not included)


def visitor_currency(request: Request[Any, Any, Any], offered: set[str]) -> str:
    """?currency= when offered, else euros for a euro-area Accept-Language region, else dollars."""
    asked = (request.query_params.get("currency") or "")[:3].upper()
    if asked in offered:
        return asked
    for part in request.headers.get("accept-language", "")[:200].split(","):
        region = part.split(";")[0].strip().split("-")[1:2]
        if region and region[0].upper() in EURO_REGIONS and "EUR" in offered:
            return "EUR"
    return "USD" if "USD" in offered else sorted(offered)[0]


def _amount(price: Price, currency: str) -> int:
    return int(price_terms(price).amounts(currency).unit_amount.to_integral_value())


async def pricing_table(
    catalog: CatalogService,
    experiments: ExperimentService,
    product_id: str,
    request: Request[Any, Any, Any],
    visitor: str,
    new_visitor: bool,
) -> tuple[list[Tier], str, str | None, str | None]:
    """The tiers side by side in the visitor's currency, with a running experiment's variant applied."""
    plans = (
        await catalog.list_plans(after=None, limit=20, kind="base", product_id=product_id, active=True)
    ).items
    prices = (
        await catalog.list_prices(after=None, limit=100, plan_id=None, active=True, currency=None)
    ).items
    mine = [p for p in prices if p.plan_id in {plan.id for plan in plans} and p.usage_type == "licensed"]
    currency = visitor_currency(request, {c for p in mine for c in p.currency_options})
    by_id = {p.id: p for p in mine}
    replacements: dict[str, str] = {}
    experiment_id = variant_key = None
    trial: int | None = None
    for experiment in await experiments.running_for_product(product_id):
        variant = await experiments.assign_visitor(
            experiment, visitor, currency=currency, new_visitor=new_visitor
        )
        if variant is not None:
            replacements, trial = dict(variant.prices), variant.trial_days
            experiment_id, variant_key = experiment.id, variant.key
            break
    tiers: list[Tier] = []
    for plan in sorted(plans, key=lambda p: p.rank):
        tier = Tier(plan, trial_days=trial if trial is not None else plan.trial_days)
        # The catalog's offer per interval is the price with a lookup key; a variant shows its replacement.
        for price in sorted((p for p in mine if p.plan_id == plan.id), key=lambda p: p.lookup_key is None):
            if price.interval not in ("month", "year") or currency not in price.currency_options:
                continue
            if getattr(tier, price.interval) is not None or price.lookup_key is None:
                continue
            shown = by_id.get(replacements.get(price.id, ""), price)
            setattr(tier, price.interval, Offer(shown, _amount(shown, currency), price.interval))
        terms = await catalog.terms(plan.id)
        for grant in terms.grants:
            tier.features[grant.feature_key] = "yes" if grant.kind == "boolean" else (
                "unlimited" if grant.limit is None else str(grant.limit)
            )  # fmt: skip
        tiers.append(tier)
    return tiers, currency, experiment_id, variant_key


class PricingPages(Controller):
    path = "/pricing"
    dependencies = DEPENDENCIES

    @get("/{product:str}", summary="The public pricing table of a product")
    async def pricing(
        self,
        request: Request[Any, Any, Any],
        product: FromPath[str],
        catalog: NamedDependency[CatalogService],
        experiments: NamedDependency[ExperimentService],
    ) -> Template:
        row = await catalog.get_product(product[:40])
        visitor = (request.cookies.get(VISITOR_COOKIE) or "")[:64]
        new_visitor = not visitor
        visitor = visitor or secrets.token_urlsafe(16)
        tiers, currency, experiment_id, variant = await pricing_table(
            catalog, experiments, row.id, request, visitor, new_visitor
        )
        interval = "year" if request.query_params.get("interval") == "year" else "month"
        features = [(await catalog.get_feature(key)) for key in _feature_order(tiers)]
        saving = {
            t.plan.id: t.month.amount * 12 - t.year.amount for t in tiers if t.month and t.year
        }  # fmt: skip
        page = render_page(
            request,
            "portal/pricing.html",
            {
                "product": row,
                "tiers": tiers,
                "currency": currency,
                "interval": interval,
                "features": features,
                "saving": saving,
                "experiment": experiment_id,
                "variant": variant,
            },
            package="portal",
        )
        page.cookies.append(_visitor_cookie(visitor, request))
        return page

    @post("/{product:str}/checkout", status_code=303, summary="Open a checkout for the chosen price")
    async def choose(
        self,
        request: Request[Any, Any, Any],
        product: FromPath[str],
        checkout: NamedDependency[CheckoutService],
        catalog: NamedDependency[CatalogService],
        experiments: NamedDependency[ExperimentService],
    ) -> Response[Any]:
        form = await request.form()
        row = await catalog.get_product(product[:40])
        visitor = (request.cookies.get(VISITOR_COOKIE) or "")[:64] or None
        price = str(form.get("price", ""))[:40]
        currency = str(form.get("currency", ""))[:3].upper() or None
        experiment_id = variant = None
        if visitor:
            tiers, _, experiment_id, variant = await pricing_table(
                catalog, experiments, row.id, request, visitor, False
            )
            shown = {o.price.id for t in tiers for o in (t.month, t.year) if o is not None}
            if price not in shown:
                raise NotFound("choose one of the prices on the pricing page")
        base = base_url(request)
        opened = await checkout.create(
            product=row.id,
            price=price,
            currency=currency,
            success_url=f"{base}/pricing/{row.id}/thanks",
            cancel_url=f"{base}/pricing/{row.id}",
            visitor_key=visitor,
            experiment_id=experiment_id,
            variant=variant,
        )
        return Redirect(f"/checkout/{opened.token}", status_code=303)

    @get("/{product:str}/thanks", summary="Where the pricing page's checkouts return")
    async def thanks(
        self,
        request: Request[Any, Any, Any],
        product: FromPath[str],
        catalog: NamedDependency[CatalogService],
    ) -> Template:
        row = await catalog.get_product(product[:40])
        return render_page(request, "portal/pricing_thanks.html", {"product": row}, package="portal")


def _feature_order(tiers: list[Tier]) -> list[str]:
    seen: list[str] = []
    for tier in tiers:
        seen.extend(k for k in tier.features if k not in seen)
    return seen


def _visitor_cookie(value: str, request: Request[Any, Any, Any]) -> Any:
    from litestar.datastructures import Cookie

    return Cookie(
        key=VISITOR_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=365 * 24 * 3600,
    )


# ---- checkout --------------------------------------------------------------------------------------------

PROMO_MESSAGES = {
    "promotion_code_expired": "This promotion code has expired.",
    "coupon_expired": "This promotion code has expired.",
}


class CheckoutPages(Controller):
    path = "/checkout"
    dependencies = DEPENDENCIES

    async def _form(
        self,
        request: Request[Any, Any, Any],
        token: str,
        checkout: CheckoutService,
        catalog: CatalogService,
        *,
        values: dict[str, str] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        session = await checkout.by_token(token)
        if session.status != "open":
            raise NotFound("this checkout link has expired or was already used")
        price = await catalog.get_price(session.price_id) if session.price_id else None
        plan = await catalog.get_plan(price.plan_id) if price else None
        currency = session.currency or (next(iter(price.currency_options)) if price else "USD")
        trial = session.trial_days
        if trial is None and session.variant and session.experiment_id:
            trial = await checkout._variant_trial(session)
        if trial is None and plan is not None:
            trial = plan.trial_days
        return render_page(
            request,
            "portal/checkout.html",
            {
                "session": session,
                "token": token,
                "price": price,
                "plan": plan,
                "currency": currency,
                "amount": _amount(price, currency) if price else 0,
                "trial_days": trial or 0,
                "values": values or {},
                "errors": errors or {},
            },
            package="portal",
            locale=session.locale,
            status_code=status_code,
        )

    @get("/{token:str}", summary="The hosted checkout form")
    async def show(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        checkout: NamedDependency[CheckoutService],
        catalog: NamedDependency[CatalogService],
    ) -> Template:
        return await self._form(request, token[:200], checkout, catalog)

    @post("/{token:str}", status_code=303, summary="Complete the checkout")
    async def complete(
        self,
        request: Request[Any, Any, Any],
        token: FromPath[str],
        checkout: NamedDependency[CheckoutService],
        catalog: NamedDependency[CatalogService],
    ) -> Response[Any]:
        form = await request.form()
        values = {
            k: str(form.get(k, ""))[:200].strip() for k in ("name", "email", "country", "promotion_code")
        }
        values["trial"] = "on" if form.get("trial") else ""
        token = token[:200]
        session = await checkout.by_token(token)
        errors: dict[str, str] = {}
        if not values["name"]:
            errors["name"] = "Enter your name."
        if "@" not in values["email"]:
            errors["email"] = "Enter an e-mail address."
        if not errors:
            try:
                async with checkout.session.begin_nested():
                    done, _ = await checkout.complete(
                        token,
                        price=session.price_id or "",
                        details=BillingDetails(
                            values["name"],
                            values["email"],
                            (values["country"] or None) and values["country"][:2].upper(),
                        ),
                        promotion_code=values["promotion_code"][:40] or None,
                        trial=bool(values["trial"]),
                    )
                return Redirect(done.success_url, status_code=303)
            except RedemptionRefused as refused:
                errors["promotion_code"] = PROMO_MESSAGES.get(
                    refused.error_code, "This promotion code cannot be used here."
                )
            except NotFound as missing:
                if "promotion" not in str(missing.detail).lower():
                    raise
                errors["promotion_code"] = "This promotion code does not exist."
            except DomainError as refused:
                errors["form"] = refused.detail
        return await self._form(
            request, token, checkout, catalog, values=values, errors=errors, status_code=422
        )


# ---- the operators' results page --------------------------------------------------------------------------


class ExperimentPages(Controller):
    path = "/experiments"
    dependencies = DEPENDENCIES

    @get("/{experiment_id:str}", summary="An experiment's results, per variant")
    async def results(
        self,
        request: Request[Any, Any, Any],
        experiment_id: FromPath[str],
        experiments: NamedDependency[ExperimentService],
        subscriptions: NamedDependency[SubscriptionService],
    ) -> Template:
        row = await experiments.get(experiment_id[:40])
        results = await experiments.results(row.id, subscriptions)
        return render_page(
            request,
            "portal/experiment.html",
            {"experiment": row, "results": results, "Decimal": Decimal},
            package="portal",
        )


ROUTERS = [
    page_router(path="/", route_handlers=[PricingPages, CheckoutPages, ExperimentPages]),
]
