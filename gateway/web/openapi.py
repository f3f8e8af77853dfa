"""What the OpenAPI document says about every operation, written once here rather than per route:
who may call it and with which scope (from the permission matrix), and the `Idempotency-Key` header
on every POST the idempotency middleware replays. Also the API-reference viewers (`/docs`), served
from assets vendored in this package, never from a CDN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from litestar import Litestar, Request, Router
from litestar.enums import ParamType
from litestar.openapi.plugins import OpenAPIRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Parameter,
    Reference,
    Schema,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from gateway.web.idempotency import MAX_KEY_LENGTH, replays
from gateway.web.permissions import Access, access_for
from gateway.web.problems import PROBLEM_MEDIA_TYPE

ASSETS_DIR = Path(__file__).parent / "docs_assets"
ASSETS_PATH = "/docs/assets"
# Pinned npm versions of the vendored viewers (docs_assets/README.md says how to upgrade them).
SCALAR_VERSION = "1.76.0"
SWAGGER_UI_VERSION = "5.35.0"

IDEMPOTENCY_KEY = Parameter(
    name="Idempotency-Key",
    param_in=ParamType.HEADER,
    required=False,
    description=(
        "Makes a retry safe: the first response for this key (per API key) is stored for "
        "`idempotency_ttl_hours` and replayed with `Idempotent-Replayed: true`; the same key with another "
        "request is a 409 `idempotency_key_reused`, and while the first is still running a 409 "
        "`idempotency_key_in_use`. A 5xx is not stored."
    ),
    # Printable ASCII without leading or trailing blanks (the middleware strips them; a blank key is a 422).
    schema=Schema(
        type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH, pattern="^[!-~]([ -~]*[!-~])?$"
    ),
)
# What the middleware itself may answer on any POST it replays, in the shape of every other error.
_PROBLEM = {PROBLEM_MEDIA_TYPE: OpenAPIMediaType(schema=Reference(ref="#/components/schemas/Problem"))}
IDEMPOTENCY_RESPONSES = {
    "409": OpenAPIResponse(
        description="The Idempotency-Key was used with another request, or its first request still runs",
        content=_PROBLEM,
    ),
    "422": OpenAPIResponse(
        description="The Idempotency-Key is not 1-255 printable characters", content=_PROBLEM
    ),
}


@dataclass
class DocumentedOperation(Operation):
    """An operation carrying its row of the permission matrix as `x-tiergate-access`."""

    x_tiergate_access: dict[str, Any] | None = field(default=None, metadata={"alias": "x-tiergate-access"})

    # Set per handler by `document_operations` (a subclass each), read when Litestar builds the operation.
    access: ClassVar[Access | None] = None
    idempotent: ClassVar[bool] = False

    def __post_init__(self) -> None:
        access = type(self).access
        if access is not None:
            self.x_tiergate_access = {
                "callers": access.kinds(),
                "scope": access.scope,
            }
            self.description = "\n\n".join(filter(None, [access_line(access), self.description]))
        if type(self).idempotent:
            self.parameters = [*(self.parameters or []), IDEMPOTENCY_KEY]
            # Operations with their own error shapes (OFREP) still get the middleware's answers documented.
            self.responses = {**IDEMPOTENCY_RESPONSES, **(self.responses or {})}


def access_line(access: Access) -> str:
    scope = f" Scope: `{access.scope}`." if access.scope else ""
    return f"**Access:** {', '.join(access.labels())}.{scope}"


def document_operations(app: Litestar) -> None:
    """Give every documented handler an operation class that writes its access (and, for POSTs the
    middleware replays, the Idempotency-Key header) into the document. A handler missing from the
    matrix gets nothing here; the guard refuses it and the security tests name it."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if handler.include_in_schema is False or handler.http_methods == {"OPTIONS"}:
                continue
            methods = sorted(handler.http_methods)
            rows = {access_for(method, route.path_format) for method in methods}
            access = rows.pop() if len(rows) == 1 else None
            idempotent = methods == ["POST"] and replays("POST", route.path_format)
            handler.operation_class = cast(
                "type[Operation]",
                type(
                    "DocumentedOperation",
                    (DocumentedOperation,),
                    {"access": access, "idempotent": idempotent},
                ),
            )


# Scalar must not reach out on its own either: no hosted fonts, telemetry, AI agent or MCP.
SCALAR_OPTIONS = {
    "withDefaultFonts": False,
    "telemetry": False,
    "agent": {"disabled": True},
    "mcp": {"disabled": True},
}


class LocalScalarRenderPlugin(ScalarRenderPlugin):
    """Scalar from `/docs/assets`; the bundle carries its own styles, so no stylesheet link."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return f"""<!DOCTYPE html>
<html>
  <head>
    <title>{openapi_schema["info"]["title"]}</title>
    {self.style}
    <meta charset="utf-8"/>
    <meta name="viewport" content="width=device-width, initial-scale=1">
  </head>
  <body>
    <noscript>Scalar requires JavaScript to show the API reference.</noscript>
    <script id="api-reference" data-url="{self.get_openapi_json_route(request)}"></script>
    {self.render_options()}
    <script src="{self.js_url}"></script>
  </body>
</html>
""".encode()


def render_plugins() -> list[OpenAPIRenderPlugin]:
    swagger = f"{ASSETS_PATH}/swagger-ui"
    return [
        LocalScalarRenderPlugin(
            version=SCALAR_VERSION,
            js_url=f"{ASSETS_PATH}/scalar/standalone.js",
            options=SCALAR_OPTIONS,
            favicon="",
        ),
        SwaggerRenderPlugin(
            version=SWAGGER_UI_VERSION,
            js_url=f"{swagger}/swagger-ui-bundle.js",
            css_url=f"{swagger}/swagger-ui.css",
            standalone_preset_js_url=f"{swagger}/swagger-ui-standalone-preset.js",
            path="/swagger",
            favicon="",
        ),
    ]


def docs_assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[ASSETS_DIR],
        include_in_schema=False,
        # The file names carry no version, so browsers revalidate; the files change only on upgrade.
        cache_control=None,
    )
