"""A plan's versions and who is on them (issue #14): every version with its grants and live subscribers,
and a form that moves subscribers to a newer version by rule, with a preview first.

- `GET /admin/catalog/plans/{plan}/versions` (catalog:read): the versions (grants, subscribers: the
  counts of `GET /v1/plans/{plan}/versions`) and the migration form: target version, the versions to
  move from (any of them ticked; none: every older one), currency, interval, customer ids. With
  `preview=1` the rule runs as a dry run (`PlanVersionMigrations.migrate(dry_run=True)`, what
  `POST /v1/plans/{plan}/versions/{version}/migrations {"dry_run": true}` runs): how many would move
  and the first 100 of them, then a confirm form. A refused rule (an older target, an unknown
  customer) shows its error beside the field.
- `POST /admin/catalog/plans/{plan}/versions` (catalog:write): the confirmed rule, moved with the same
  service call without `dry_run`; audited as `admin.plan_version_migrated`; back to the page with how
  many moved (and how many still match, past the 1,000 one call moves).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit.service import record
from gateway.catalog import PlanTerms
from gateway.catalog.domain import FeatureKind
from gateway.catalog.ports import VersionSubscribers
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.subscriptions.http import DEPENDENCIES as SUBSCRIPTION_DEPENDENCIES
from gateway.subscriptions.http import provide_migrations
from gateway.subscriptions.migrations import MigrationResult, MigrationRule, PlanVersionMigrations
from gateway.webui.pages import render_page

PATH = "/catalog/plans/{plan:str}/versions"
DEPENDENCIES = {**SUBSCRIPTION_DEPENDENCIES, "migrations": Provide(provide_migrations, sync_to_thread=False)}
MAX_FEATURES = 200
MAX_VERSIONS = 100
FIELDS = ("to", "from", "currency", "interval", "customer_ids")
Field = Annotated[str, QueryParameter(max_length=2000)]


@dataclass(frozen=True, slots=True)
class GrantLine:
    name: str
    kind: str
    limit: int | None  # None: unlimited (or a boolean feature)


@dataclass(frozen=True, slots=True)
class VersionRow:
    version: int
    note: str | None
    created_at: Any
    grants: list[GrantLine]
    subscribers: int
    current: bool


def rule_of(values: dict[str, str]) -> tuple[int, MigrationRule]:
    """The target version and the rule a submitted form asks for; ValidationFailed names the field."""
    raw_to = values.get("to", "").strip()
    if not raw_to.isdigit() or len(raw_to) > 9:
        raise ValidationFailed("choose the version to move to", field="to")
    # The ticked versions travel as one comma-separated value (the confirm form's hidden field).
    raw_from = [v for v in re.split(r"[\s,]+", values.get("from", "")) if v]
    if len(raw_from) > MAX_VERSIONS or any(not v.isdigit() or len(v) > 9 for v in raw_from):
        raise ValidationFailed("choose the versions to move from", field="from")
    customers = [c for c in re.split(r"[\s,;]+", values.get("customer_ids", "")) if c]
    if any(len(c) > 40 for c in customers):
        raise ValidationFailed("a customer id has at most 40 characters", field="customers")
    rule = MigrationRule(
        from_versions=sorted({int(v) for v in raw_from}) or None,
        currency=values.get("currency", "").strip().upper() or None,
        interval=values.get("interval", "").strip() or None,
        customers=customers or None,
    )
    return int(raw_to), rule


async def _versions(
    migrations: PlanVersionMigrations, counts: VersionSubscribers, plan: str
) -> tuple[PlanTerms, list[VersionRow]]:
    terms = await migrations.catalog.list_versions(plan)  # 404 for an unknown plan
    features = (await migrations.catalog.list_features(after=None, limit=MAX_FEATURES)).items
    names = {f.key: f.name for f in features}
    live = await counts.live_by_version(terms[0].plan.id)
    current = terms[0].plan.current_version
    rows = [
        VersionRow(
            t.version.version,
            t.version.note,
            t.version.created_at,
            [
                GrantLine(
                    names.get(g.feature_key, g.feature_key),
                    g.kind.value,
                    None if g.kind is FeatureKind.BOOLEAN else g.limit,
                )
                for g in t.grants
            ],
            live.get(t.version.id, 0),
            t.version.version == current,
        )
        for t in terms
    ]
    return terms[-1], rows


async def _page(
    request: Request[Any, Any, Any],
    migrations: PlanVersionMigrations,
    counts: VersionSubscribers,
    plan: str,
    values: dict[str, str],
    *,
    preview: MigrationResult | None = None,
    error: ValidationFailed | None = None,
) -> Template:
    latest, versions = await _versions(migrations, counts, plan)
    prices = (
        await migrations.catalog.list_prices(
            after=None, limit=MAX_FEATURES, plan_id=latest.plan.id, active=None, currency=None
        )
    ).items
    currencies = sorted({c for p in prices for c in p.currency_options})
    names = {}
    if preview is not None:
        found = await migrations.customers.load_many([m.customer for m in preview.subscriptions])
        names = {customer_id: row.name for customer_id, row in found.items()}
    form = {name: values.get(name, "") for name in FIELDS}
    form["to"] = form["to"] or str(latest.plan.current_version)
    ticked = {v for v in re.split(r"[\s,]+", form["from"]) if v}
    return render_page(
        request,
        "admin/plan_versions.html",
        {
            "plan": latest.plan,
            "versions": versions,
            "version_options": [(str(v.version), f"v{v.version}") for v in versions],
            "currency_options": [(c, c) for c in currencies],
            "form": form,
            "ticked": ticked,
            "preview": preview,
            "names": names,
            "error_field": str(error.extra.get("field", "")) if error else "",
            "error_code": error.error_code if error else "",
            "migrated": request.query_params.get("migrated", "")[:9],
            "remaining": request.query_params.get("remaining", "")[:9],
            "moved_to": request.query_params.get("moved_to", "")[:9],
        },
        package="admin",
        status_code=422 if error else 200,
    )


@get(PATH, summary="A plan's versions, their subscribers, and moving subscribers", dependencies=DEPENDENCIES)
async def versions_page(
    request: Request[Any, Any, Any],
    plan: FromPath[str],
    migrations: NamedDependency[PlanVersionMigrations],
    version_subscribers: NamedDependency[VersionSubscribers],
    preview: Annotated[str, QueryParameter(name="preview", max_length=1)] = "",
    to: Annotated[str, QueryParameter(name="to", max_length=9)] = "",
    from_: Annotated[list[str] | None, QueryParameter(name="from", max_items=MAX_VERSIONS)] = None,
    currency: Annotated[str, QueryParameter(name="currency", max_length=3)] = "",
    interval: Annotated[str, QueryParameter(name="interval", max_length=10)] = "",
    customer_ids: Annotated[str, QueryParameter(name="customer_ids", max_length=5000)] = "",
) -> Template:
    """With `preview=1`: the rule as a dry run (nothing moves), and a form to confirm it."""
    ticked = ",".join(v[:9] for v in from_ or [])
    values = {"to": to, "from": ticked, "currency": currency, "interval": interval}
    values["customer_ids"] = customer_ids
    plan = plan[:100]
    if not preview:
        return await _page(request, migrations, version_subscribers, plan, values)
    try:
        version, rule = rule_of(values)
        result = await migrations.migrate(plan, version, rule, dry_run=True)
    except ValidationFailed as exc:
        return await _page(request, migrations, version_subscribers, plan, values, error=exc)
    return await _page(request, migrations, version_subscribers, plan, values, preview=result)


@post(
    PATH,
    summary="Move subscribers to a version (after the preview)",
    status_code=303,
    dependencies=DEPENDENCIES,
)
async def migrate(
    request: Request[Any, Any, Any],
    plan: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
    migrations: NamedDependency[PlanVersionMigrations],
    version_subscribers: NamedDependency[VersionSubscribers],
) -> Template | Redirect:
    """As `POST /v1/plans/{plan}/versions/{version}/migrations` without `dry_run`."""
    submitted = await request.form()
    form = {k: str(v)[:5000] for k, v in submitted.items() if k in FIELDS}
    form["from"] = ",".join(str(v)[:2000] for v in submitted.getall("from")) if "from" in submitted else ""
    plan = plan[:100]
    try:
        version, rule = rule_of(form)
        result = await migrations.migrate(plan, version, rule, dry_run=False)
    except ValidationFailed as exc:
        return await _page(request, migrations, version_subscribers, plan, form, error=exc)
    await record(
        session,
        action="admin.plan_version_migrated",
        at=clock.now(),
        target=result.plan,
        data={
            "to_version": result.to_version,
            "from_versions": result.from_versions,
            "currency": rule.currency,
            "interval": rule.interval,
            "customers": list(rule.customers) if rule.customers else None,
            "migrated": result.migrated,
            "remaining": result.remaining,
        },
    )
    query = urlencode({"migrated": result.migrated, "remaining": result.remaining, "moved_to": version})
    return Redirect(f"/admin/catalog/plans/{result.plan}/versions?{query}", status_code=303)


ROUTES = [versions_page, migrate]
