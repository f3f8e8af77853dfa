"""The tier grid (issue #14: "features with limits per plan in one grid, editable"): every feature against
every active base plan, each cell the plan's current version's grant. Editing a plan's column publishes
the plan's next version through `CatalogService.publish_grants`, exactly what
`POST /v1/plans/{plan}/versions` does (existing subscribers keep their version: grandfathering).

- `GET /admin/catalog/grid` (catalog:read), `GET /admin/catalog/grid/{plan}` (the column's form) and
  `POST /admin/catalog/grid/{plan}` (catalog:write): per feature, a checkbox for a boolean one, else a
  limit: empty = not granted, `unlimited`, or a whole number. Bad input shows the form again with the
  error beside the field (422) and publishes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog import CatalogService, GrantInput
from gateway.catalog.domain import FeatureKind, Grant
from gateway.catalog.models import Feature
from gateway.catalog.repository import CatalogRepository
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.webui.pages import render_page

MAX_ROWS = 200  # features and plans a grid shows; a catalog is far smaller


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    name: str
    version: int
    grants: dict[str, Grant]  # feature key → grant of the current version


async def _grid(catalog: CatalogService) -> tuple[list[Feature], list[Column]]:
    features = list((await catalog.list_features(after=None, limit=MAX_ROWS)).items)
    plans = (
        await catalog.list_plans(after=None, limit=MAX_ROWS, kind="base", product_id=None, active=True)
    ).items
    columns = []
    for plan in sorted(plans, key=lambda p: (p.rank, p.key)):
        terms = await catalog.terms(plan.id)
        grants = {g.feature_key: g for g in terms.grants}
        columns.append(Column(plan.key, plan.name, terms.version.version, grants))
    return features, columns


def _catalog(session: AsyncSession, clock: Clock) -> CatalogService:
    return CatalogService(CatalogRepository(session), clock)


def parse_column(features: list[Feature], form: dict[str, str], old: dict[str, Grant]) -> list[GrantInput]:
    """The grants a submitted column asks for; raises ValidationFailed naming the feature's field."""
    grants = []
    for feature in features:
        field = f"f_{feature.key}"
        raw = form.get(field, "").strip()[:40]
        soft = old[feature.key].soft if feature.key in old else False
        if feature.kind == FeatureKind.BOOLEAN:
            if raw:
                grants.append(GrantInput(feature=feature.key))
        elif raw.lower() == "unlimited":
            grants.append(GrantInput(feature=feature.key, limit="unlimited", soft=soft))
        elif raw:
            if not raw.isdigit():
                raise ValidationFailed("a whole number, `unlimited`, or empty", field=field)
            grants.append(GrantInput(feature=feature.key, limit=int(raw), soft=soft))
    return grants


@get("/catalog/grid", summary="The tier grid: features by plans")
async def grid_page(
    request: Request[Any, Any, Any], session: NamedDependency[AsyncSession], clock: NamedDependency[Clock]
) -> Template:
    features, columns = await _grid(_catalog(session, clock))
    published = request.query_params.get("published", "")[:100]
    return render_page(
        request,
        "admin/grid.html",
        {"features": features, "columns": columns, "published": published},
        package="admin",
    )


async def _column_form(
    request: Request[Any, Any, Any],
    catalog: CatalogService,
    plan: str,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    features, columns = await _grid(catalog)
    column = next((c for c in columns if c.key == plan), None)
    if column is None:
        await catalog.get_plan(plan[:100])  # 404 for an unknown plan
        raise ValidationFailed("only active base plans are in the grid", field="plan")
    if values is None:
        values = {}
        for f in features:
            grant = column.grants.get(f.key)
            if grant is None:
                values[f.key] = ""
            elif f.kind == FeatureKind.BOOLEAN:
                values[f.key] = "on"
            else:
                values[f.key] = "unlimited" if grant.limit is None else str(grant.limit)
    return render_page(
        request,
        "admin/grid_column.html",
        {"features": features, "column": column, "values": values, "errors": errors or {}},
        package="admin",
        status_code=422 if errors else 200,
    )


@get("/catalog/grid/{plan:str}", summary="Edit one plan's column of the tier grid")
async def column_page(
    request: Request[Any, Any, Any],
    plan: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
) -> Template:
    return await _column_form(request, _catalog(session, clock), plan[:100])


@post("/catalog/grid/{plan:str}", summary="Publish one plan's column as its next version", status_code=303)
async def publish_column(
    request: Request[Any, Any, Any],
    plan: FromPath[str],
    session: NamedDependency[AsyncSession],
    clock: NamedDependency[Clock],
) -> Template | Redirect:
    catalog = _catalog(session, clock)
    form = {k: str(v)[:100] for k, v in (await request.form()).items()}
    features, columns = await _grid(catalog)
    column = next((c for c in columns if c.key == plan[:100]), None)
    if column is None:
        return await _column_form(request, catalog, plan[:100])
    # Everything is checked before anything is written: a refused form publishes nothing.
    try:
        grants = parse_column(features, form, column.grants)
    except ValidationFailed as exc:
        values = {f.key: form.get(f"f_{f.key}", "") for f in features}
        field = str(exc.extra.get("field", ""))
        return await _column_form(request, catalog, plan[:100], values, {field: exc.detail})
    version = await catalog.publish_grants(column.key, grants, "tier grid (admin console)")
    return Redirect(f"/admin/catalog/grid?published={column.key}%20v{version.version}", status_code=303)


ROUTES = [grid_page, column_page, publish_column]
