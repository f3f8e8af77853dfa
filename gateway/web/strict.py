"""Refuse query parameters an endpoint does not declare (Stripe does the same): a typo such as
`?stauts=active` would otherwise silently return the unfiltered list."""

from __future__ import annotations

from typing import Any, cast

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.kernel.errors import ValidationFailed


def _declared_query_params(app: Any) -> dict[tuple[str, str], frozenset[str]]:
    declared: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in app.openapi_schema.to_schema().get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            names = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
            declared[(method.upper(), path)] = frozenset(names)
    return declared


# Building the OpenAPI document costs seconds for the whole API, and every app built from the same code
# declares the same parameters (tests build hundreds of apps): compute it once per process and route set.
_DECLARED: dict[tuple[str, ...], dict[tuple[str, str], frozenset[str]]] = {}


def _declared_for(app: Any) -> dict[tuple[str, str], frozenset[str]]:
    fingerprint = tuple(sorted(route.path for route in app.routes))
    if fingerprint not in _DECLARED:
        _DECLARED[fingerprint] = _declared_query_params(app)
    return _DECLARED[fingerprint]


async def reject_unknown_query_params(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    if not connection.scope.get("query_string"):
        return
    state = connection.app.state
    declared = state.get("declared_query_params")
    if declared is None:
        declared = state["declared_query_params"] = _declared_for(connection.app)
    scope = cast(dict[str, Any], connection.scope)
    allowed = declared.get((scope["method"], scope["path_template"]))
    if allowed is None:
        return
    unknown = sorted(set(connection.query_params.keys()) - allowed)
    if unknown:
        raise ValidationFailed(
            f"unknown query parameter(s): {', '.join(repr(u) for u in unknown)}",
            code="unknown_parameter",
            allowed=sorted(allowed),
        )
