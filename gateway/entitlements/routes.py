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
`unmatched="allow"` (then only a valid token is required) *and* the path lies outside every gated prefix:
the first segment of every route whose path starts with a literal (`/api` for the demo table) is gated, and
under it only what a route matches is allowed, whatever `unmatched` says (default-deny).

The proxy's URI is normalised once (`normalise_path`) into the segments the backend most plausibly reads,
and routes match those segments. Where backends disagree (Express matches case-insensitively, Tomcat drops
`;params`, IIS drops trailing dots, Rails reads `advanced.json` as `advanced`), the normalised form is the
*most restrictive* reading; where no reading is safe (dot segments, encoded slashes, double encoding), the
path is refused (`BadPath`). Literal segments compare case-insensitively unless the table is loaded with
`case_sensitive=True`; then captured values keep their case, otherwise they are folded too.

Pure: no web framework, so it is testable on its own and cheap to call on every proxied request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import msgspec

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_KEYS = frozenset({"method", "path", "resource", "action", "feature", "consume", "quantity"})


class RouteTableError(ValueError):
    """The table is malformed; the message names the entry (index and path) and the problem."""


class RouteMatch(msgspec.Struct, frozen=True):
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


# `%` + two hex digits; anything else after a `%` is malformed (RFC 3986 2.1).
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# After decoding, these would split or end the segment differently in some backend: refuse them.
_SEPARATORS = frozenset("/\\?#")
_DOT_SEGMENTS = frozenset({".", ".."})


def _fold(text: str) -> str:
    """Case-insensitive form: compatibility forms first (fullwidth `ａ` is `a`), then Unicode case folding
    (`ſ` is `s`, the Kelvin sign is `k`), so no look-alike that a lenient backend folds escapes a gate."""
    return unicodedata.normalize("NFKC", text).casefold()


def _segment(raw: str, case_sensitive: bool) -> str:
    """One raw path segment as the route table sees it, or `BadPath`."""
    # Matrix parameters (`advanced;x=1`): Tomcat and Jetty drop them before routing. Cut before decoding
    # (what they do) and again after (an encoded `%3B` may be decoded first elsewhere): the name that
    # remains is a prefix of every reading, so it can only match *more* gates, never fewer.
    raw = raw.split(";", 1)[0]
    if _LONE_PERCENT.search(raw):
        raise BadPath(f"malformed percent-encoding in the path segment {raw!r}")
    try:
        part = unquote(raw, errors="strict") if "%" in raw else raw
    except UnicodeDecodeError:
        raise BadPath(f"the path segment {raw!r} is not UTF-8 once decoded") from None
    part = part.split(";", 1)[0]
    if _ESCAPE.search(part):
        # `%2561dvanced` decodes to `%61dvanced`, which a backend that decodes twice reads as `advanced`.
        raise BadPath(f"double percent-encoding in the path segment {raw!r}")
    # Validate the compatibility form too: a fullwidth solidus or dots become `/` and `..` under NFKC.
    for form in (part, unicodedata.normalize("NFKC", part)):
        if form in _DOT_SEGMENTS or any(ch in _SEPARATORS for ch in form) or not form.isprintable():
            # Dot segments are resolved by some backends and not by others (Express routes
            # `/reports/advanced/../basic` as the advanced report); legitimate clients resolve them before
            # sending, so one that reaches us is refused, as is an encoded slash.
            raise BadPath(f"refusing to route the path segment {raw!r}")
    # Windows servers drop trailing dots and spaces (`advanced.` and `advanced%20` are `advanced`).
    part = part.rstrip(". ")
    if not part:
        raise BadPath(f"the path segment {raw!r} is only dots and spaces")
    return part if case_sensitive else _fold(part)


def _drop_extension(part: str) -> str:
    """`advanced.json` is decided as `advanced`: Rails, Django REST framework and many Express apps read a
    final `.ext` as the response format of the same resource. A leading dot (`.well-known`) is a name."""
    name, dot, _ = part.partition(".")
    return name if dot and name else part


# Proxies ask about the same few paths over and over: the normalised segments of recent URIs are kept
# (a pure function of the URI and the case rule; a refused URI raises each time, it is never cached).
_NORMALISED_CACHE_MAX_URI = 512


@lru_cache(maxsize=8192)
def _normalised(uri: str, case_sensitive: bool) -> tuple[str, ...]:
    return normalise_path(uri, case_sensitive=case_sensitive)


def normalise_path(uri: str, *, case_sensitive: bool = False) -> tuple[str, ...]:
    """The segments of the path part of `uri` as the route table matches them. Raises `BadPath`.

    Once, in this order: query and fragment dropped; empty segments merged (`//`, a trailing `/`), as
    nginx's `merge_slashes` does; per segment, matrix parameters cut, percent-decoded once, refused if
    ambiguous (dot segments, encoded `/` `\\` `?` `#`, control characters, double encoding, invalid
    UTF-8), trailing dots and spaces dropped, case folded unless `case_sensitive`; and the last segment's
    extension dropped."""
    path = uri.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        # An absolute-form request target (`http://host/path`): only its path is routed.
        _, scheme_sep, rest = path.partition("://")
        path = "/" + rest.partition("/")[2] if scheme_sep else "/" + path
    parts = [_segment(raw, case_sensitive) for raw in path.split("/") if raw]
    if parts:
        parts[-1] = _drop_extension(parts[-1])
    return tuple(parts)


_MATCHES_MAX = 8192


@dataclass(frozen=True, slots=True)
class RouteTable:
    routes: tuple[Route, ...]
    unmatched_allowed: bool = False
    case_sensitive: bool = False
    # First segments (folded unless case-sensitive) under which only a matching route allows anything.
    gated_prefixes: frozenset[str] = frozenset()
    # (method, normalised segments) -> what `match` found: the table never changes, and a proxy asks
    # about the same few hundred paths all day (the walk over the entries and the resource template cost
    # several µs of forward auth's budget). Bounded: emptied when full.
    _matches: dict[tuple[str, tuple[str, ...]], RouteMatch | None] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def normalise(self, uri: str) -> tuple[str, ...]:
        """`uri`'s path as this table matches it (`normalise_path` with the table's case rule)."""
        if len(uri) <= _NORMALISED_CACHE_MAX_URI:
            return _normalised(uri, self.case_sensitive)
        return normalise_path(uri, case_sensitive=self.case_sensitive)

    def resolve(self, method: str, uri: str) -> RouteMatch | None:
        """The first entry matching the request, or None. Raises `BadPath` for unroutable paths."""
        return self.match(method, self.normalise(uri))

    def match(self, method: str, parts: Sequence[str]) -> RouteMatch | None:
        """The first entry matching already normalised segments, or None."""
        key = (method, tuple(parts))
        try:
            return self._matches[key]
        except KeyError:
            pass
        found = self._first_match(method.upper(), parts)
        if sum(map(len, parts)) <= _NORMALISED_CACHE_MAX_URI:  # long paths are rare: not worth keeping
            if len(self._matches) >= _MATCHES_MAX:
                self._matches.clear()
            self._matches[key] = found
        return found

    def _first_match(self, method: str, parts: Sequence[str]) -> RouteMatch | None:
        for number, route in enumerate(self.routes):
            captured = route.match(method, parts)
            if captured is None:
                continue
            resource = _fill(route.resource, captured) if captured else route.resource
            return RouteMatch(resource, route.action, route.features, route.consume, route.quantity, number)
        return None

    def gated(self, parts: Sequence[str]) -> bool:
        """Whether normalised `parts` lie under a gated prefix, where an unmatched request is denied even
        when the table allows unmatched requests."""
        return bool(parts) and parts[0] in self.gated_prefixes

    def allows_unmatched(self, parts: Sequence[str]) -> bool:
        return self.unmatched_allowed and not self.gated(parts)


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


def _compile(number: int, entry: Mapping[str, Any], case_sensitive: bool) -> Route:
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
        elif not _normal(segment, last=segment is segments[-1]):
            # A literal that normalisation changes (`a;b`, `%41`, `a.`, a final `a.json`) never matches.
            raise _fail(number, entry, f"segment {segment!r} is not in normal form (see normalise_path)")
    if not case_sensitive:
        segments = tuple(s if s.startswith("{") else _fold(s) for s in segments)
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


def _normal(segment: str, *, last: bool) -> bool:
    try:
        part = _segment(segment, case_sensitive=True)
    except BadPath:
        return False
    return part == segment and (not last or _drop_extension(part) == part)


def load_routes(
    entries: Iterable[Mapping[str, Any]], *, unmatched: str = "deny", case_sensitive: bool = False
) -> RouteTable:
    """Validate and compile a table (the list of dicts TOML gives). Raises `RouteTableError`."""
    if unmatched not in {"deny", "allow"}:
        raise RouteTableError(f'unmatched must be "deny" or "allow", not {unmatched!r}')
    routes = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise RouteTableError(f"forward route #{number}: must be a table, not {type(entry).__name__}")
        routes.append(_compile(number, entry, case_sensitive))
    gated = frozenset(r.segments[0] for r in routes if r.segments and not r.segments[0].startswith("{"))
    return RouteTable(
        tuple(routes),
        unmatched_allowed=unmatched == "allow",
        case_sensitive=case_sensitive,
        gated_prefixes=gated,
    )


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
