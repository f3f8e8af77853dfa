"""The forward-auth route table: which permission (and which quota) an original request needs.

A reverse proxy asks Tiergate about a request it is about to pass to the SaaS app (`/v1/authz/forward`);
the proxy knows only a method and a URI, the decision index knows resources and actions. This table is
the translation, kept as plain data so it can live in `config.toml`:

    [[tiergate.forward_routes]]
    method = ["GET", "POST"]          # or "GET", or "*" (any); GET also answers HEAD
    path = "/api/projects/{id}/**"    # `{name}` = one segment, a trailing `/**` = any rest (or none)
    resource = "projects/{id}"        # `{name}` is replaced by what the path captured
    action = "read"
    feature = "api_calls"             # optional; or a list, checked in order
    consume = true                    # take the units (quota) instead of only looking
    quantity = 1

First match wins. A request no entry matches is denied with `no_route` unless the table is loaded with
`unmatched="allow"` (then only a valid token is required).

Pure: no web framework, so it is testable on its own and cheap to call on every proxied request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_KEYS = frozenset({"method", "path", "resource", "action", "feature", "consume", "quantity"})


class RouteTableError(ValueError):
    """The table is malformed; the message names the entry (index and path) and the problem."""


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """What the matched entry asks of the decision engine for this request."""

    resource: str
    action: str
    features: tuple[str, ...]
    consume: bool
    quantity: int
    entry: int  # index of the matching entry, for logs and for telling tables apart in tests


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str] | None  # None = any method
    segments: tuple[str, ...]  # literal text, or "{name}" for a capture
    rest: bool  # the template ended in `/**`
    resource: str
    action: str
    features: tuple[str, ...]
    consume: bool
    quantity: int

    def match(self, method: str, parts: Sequence[str]) -> dict[str, str] | None:
        if self.methods is not None and method not in self.methods:
            return None
        if len(parts) < len(self.segments) or (not self.rest and len(parts) != len(self.segments)):
            return None
        captured: dict[str, str] = {}
        for template, part in zip(self.segments, parts, strict=False):
            if template.startswith("{"):
                captured[template[1:-1]] = part
            elif template != part:
                return None
        return captured


class BadPath(ValueError):
    """The original path cannot be matched safely (dot segments, encoded slashes, control characters)."""


def split_path(uri: str) -> list[str]:
    """The decoded segments of the path part of `uri` (query and fragment dropped, empty segments merged
    as nginx's `merge_slashes` does).

    Segments are percent-decoded so that `/api/%70rojects` cannot slip past a `/api/projects` rule, and
    dot segments and encoded slashes are refused outright: the app behind the proxy may resolve
    `/api/reports/basic/../advanced` to a gated report while the table would have seen `reports/basic`."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        # An absolute-form request target (`http://host/path`): only its path is routed.
        _, scheme_sep, rest = path.partition("://")
        path = "/" + rest.partition("/")[2] if scheme_sep else "/" + path
    parts = []
    for raw in path.split("/"):
        if not raw:
            continue
        part = unquote(raw, errors="strict") if "%" in raw else raw
        if part in {".", ".."} or "/" in part or "\\" in part or not part.isprintable():
            raise BadPath(f"refusing to route the path segment {raw!r}")
        parts.append(part)
    return parts


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: tuple[Route, ...]
    unmatched_allowed: bool = False

    def resolve(self, method: str, uri: str) -> RouteMatch | None:
        """The first entry matching the request, or None. Raises `BadPath` for unroutable paths."""
        method = method.upper()
        parts = split_path(uri)
        for number, route in enumerate(self.routes):
            captured = route.match(method, parts)
            if captured is None:
                continue
            resource = _fill(route.resource, captured) if captured else route.resource
            return RouteMatch(resource, route.action, route.features, route.consume, route.quantity, number)
        return None


def _fill(template: str, captured: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: captured[m.group(1)], template)


def _fail(number: int, entry: Mapping[str, Any], problem: str) -> RouteTableError:
    where = entry.get("path") if isinstance(entry, Mapping) else None
    label = f"forward route #{number}" + (f" ({where!r})" if isinstance(where, str) else "")
    return RouteTableError(f"{label}: {problem}")


def _methods(number: int, entry: Mapping[str, Any]) -> frozenset[str] | None:
    raw = entry.get("method", "*")
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not items or not all(isinstance(m, str) for m in items):
        raise _fail(number, entry, '`method` must be "*", a method name or a non-empty list of them')
    upper = {m.upper() for m in items}
    if "*" in upper:
        if len(upper) > 1:
            raise _fail(number, entry, '`method` "*" cannot be combined with other methods')
        return None
    unknown = upper - HTTP_METHODS
    if unknown:
        raise _fail(number, entry, f"unknown method(s) {sorted(unknown)}")
    # A HEAD is a GET without the body: allowing one and refusing the other would only confuse clients.
    return frozenset(upper | ({"HEAD"} if "GET" in upper else set()))


def _compile(number: int, entry: Mapping[str, Any]) -> Route:
    extra = set(entry) - _KEYS
    if extra:
        raise _fail(number, entry, f"unknown key(s) {sorted(extra)}")
    path = entry.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise _fail(number, entry, "`path` must be a string starting with '/'")
    rest = path.endswith("/**")
    body = path[:-3] if rest else path
    segments = tuple(s for s in body.split("/") if s)
    names: list[str] = []
    for segment in segments:
        if segment.startswith("{") or segment.endswith("}"):
            name = segment[1:-1]
            if not (segment.startswith("{") and segment.endswith("}") and _NAME.match(name)):
                raise _fail(number, entry, f"bad placeholder {segment!r} (use {{name}} for a whole segment)")
            if name in names:
                raise _fail(number, entry, f"placeholder {{{name}}} appears twice")
            names.append(name)
        elif "*" in segment or "{" in segment or "}" in segment:
            raise _fail(number, entry, f"bad segment {segment!r}: only a trailing '/**' is a wildcard")
    resource, action = entry.get("resource"), entry.get("action")
    if not isinstance(resource, str) or not resource or not isinstance(action, str) or not action:
        raise _fail(number, entry, "`resource` and `action` must be non-empty strings")
    for used in _PLACEHOLDER.findall(resource):
        if used not in names:
            raise _fail(number, entry, f"`resource` uses {{{used}}}, which the path does not capture")
    raw_features = entry.get("feature")
    features: tuple[str, ...]
    if raw_features is None:
        features = ()
    elif isinstance(raw_features, str) and raw_features:
        features = (raw_features,)
    elif (
        isinstance(raw_features, list | tuple)
        and raw_features
        and all(isinstance(f, str) and f for f in raw_features)
    ):
        features = tuple(raw_features)
    else:
        raise _fail(number, entry, "`feature` must be a feature key or a non-empty list of them")
    consume = entry.get("consume", False)
    quantity = entry.get("quantity", 1)
    if not isinstance(consume, bool):
        raise _fail(number, entry, "`consume` must be true or false")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise _fail(number, entry, "`quantity` must be a positive integer")
    if consume and not features:
        raise _fail(number, entry, "`consume` needs a `feature`")
    return Route(_methods(number, entry), segments, rest, resource, action, features, consume, quantity)


def load_routes(entries: Iterable[Mapping[str, Any]], *, unmatched: str = "deny") -> RouteTable:
    """Validate and compile a table (the list of dicts TOML gives). Raises `RouteTableError`."""
    if unmatched not in {"deny", "allow"}:
        raise RouteTableError(f'unmatched must be "deny" or "allow", not {unmatched!r}')
    routes = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise RouteTableError(f"forward route #{number}: must be a table, not {type(entry).__name__}")
        routes.append(_compile(number, entry))
    return RouteTable(tuple(routes), unmatched_allowed=unmatched == "allow")


# The demo SaaS (policies/demo_policy.csv): projects CRUD, three report families gated by plan, member
# management. Every /api call is metered as `api_calls`; creating a project also reserves a unit of the
# `projects` gauge (checked first, so a refused creation is not billed as an API call).
DEFAULT_ROUTES: tuple[dict[str, Any], ...] = (
    {"method": "GET", "path": "/api/projects", "resource": "projects", "action": "read",
     "feature": "api_calls", "consume": True},
    {"method": "POST", "path": "/api/projects", "resource": "projects", "action": "create",
     "feature": ["projects", "api_calls"], "consume": True},
    {"method": "GET", "path": "/api/projects/{id}/**", "resource": "projects/{id}", "action": "read",
     "feature": "api_calls", "consume": True},
    {"method": ["PUT", "PATCH", "POST"], "path": "/api/projects/{id}/**", "resource": "projects/{id}",
     "action": "update", "feature": "api_calls", "consume": True},
    {"method": "DELETE", "path": "/api/projects/{id}", "resource": "projects/{id}", "action": "delete",
     "feature": "api_calls", "consume": True},
    {"method": "GET", "path": "/api/reports/{family}/**", "resource": "reports/{family}", "action": "read",
     "feature": "api_calls", "consume": True},
    {"method": "GET", "path": "/api/members/**", "resource": "members", "action": "read",
     "feature": "api_calls", "consume": True},
    {"method": "POST", "path": "/api/members", "resource": "members", "action": "create",
     "feature": "api_calls", "consume": True},
    {"method": ["PUT", "PATCH"], "path": "/api/members/{id}", "resource": "members/{id}", "action": "update",
     "feature": "api_calls", "consume": True},
    {"method": "DELETE", "path": "/api/members/{id}", "resource": "members/{id}", "action": "delete",
     "feature": "api_calls", "consume": True},
)  # fmt: skip

DEFAULT_TABLE = load_routes(DEFAULT_ROUTES)
