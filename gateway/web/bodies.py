"""Every request body and parameter is checked once, centrally, before a handler or dependency sees it.

Litestar decodes JSON bodies without a depth limit (a 10,000-deep array is a RecursionError, hence a
500), converts them in msgspec's *lax* mode (`"active": 0` became `False`, `"quantity": "5"` became 5),
lets a NUL character through to PostgreSQL (asyncpg refuses it: another 500), and answers an empty or
truncated body with `"key": "data"` / "Input data was truncated". `check_request` runs as the app's
`before_request` hook and refuses all of these with a 422 naming the problem and the field:

- `body_empty`: the endpoint needs a JSON body and got none (the detail lists the expected fields);
- `malformed_json`: the body is not JSON (the detail says at which byte);
- `json_too_deep`: arrays/objects nested deeper than the configured depth;
- `nul_character`: a NUL (U+0000) in any string or key of the body, or in a query or path parameter;
- `validation_failed`: the body does not match the endpoint's schema *strictly* (no number for a boolean,
  no string for a number, every `maxLength`), with `field` = the path of the offending value.

The size of the whole body is bounded by Litestar itself (`request_max_body_size`, a 413).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.utils.scope.state import ScopeState

DEFAULT_MAX_JSON_DEPTH = 32
NUL = "\x00"


class InvalidInput(ValidationException):
    """A refused body or parameter: rendered as a 422 problem with this `code` and `field` (and by the
    SCIM and OFREP routers in their own error shapes)."""

    def __init__(self, detail: str, *, code: str, field: str | None = None, source: str = "body") -> None:
        super().__init__(detail=detail, extra=[{"message": detail, "key": field or source, "source": source}])
        self.code = code
        self.field = field


# -- decoding and walking any JSON value --------------------------------------------------------------


def decode_json(raw: bytes, *, max_depth: int) -> Any:
    """Decode a non-empty JSON body, refusing malformed JSON, excessive nesting and NUL characters."""
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        raise _too_deep(max_depth) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(_malformed(str(exc), raw), code="malformed_json") from None
    refuse_deep_or_nul(value, raw, max_depth=max_depth)
    return value


def _malformed(message: str, raw: bytes) -> str:
    if "truncated" in message:
        return f"malformed JSON at byte {len(raw)}: the body ends before the JSON value does (truncated?)"
    match = re.search(r"\(byte (\d+)\)", message)
    reason = message.removeprefix("JSON is malformed: ").split(" (byte")[0]
    return f"malformed JSON at byte {match.group(1)}: {reason}" if match else f"malformed JSON: {reason}"


def _too_deep(max_depth: int) -> InvalidInput:
    return InvalidInput(
        f"JSON nested deeper than {max_depth} levels of arrays and objects", code="json_too_deep"
    )


def refuse_deep_or_nul(value: Any, raw: bytes, *, max_depth: int) -> None:
    """Walk the decoded value only when the raw bytes say it may hold a problem: a body with fewer
    brackets than the depth limit cannot be too deep, and a NUL can only arrive escaped as \\u0000."""
    may_be_deep = raw.count(b"[") + raw.count(b"{") > max_depth
    may_hold_nul = b"\\u0000" in raw
    if may_be_deep or may_hold_nul:
        problem = find_deep_or_nul(value, max_depth=max_depth)
        if problem is not None:
            raise problem


def find_deep_or_nul(value: Any, *, max_depth: int) -> InvalidInput | None:
    """The first container nested deeper than `max_depth`, or string or key holding a NUL, as an error
    naming its path (`metadata.note`, `items[2].name`); iterative, so depth cannot overflow the stack."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if NUL in item:
                return _nul(path)
        elif isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return _too_deep(max_depth)
            if isinstance(item, dict):
                for key, child in item.items():
                    child_path = f"{path}.{key}" if path else str(key)
                    if NUL in key:
                        return _nul(child_path.replace(NUL, "\\u0000"))
                    stack.append((child, child_path, depth + 1))
            else:
                stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    return None


def _nul(path: str, source: str = "body") -> InvalidInput:
    where = f"`{path}`" if path else "the body"
    return InvalidInput(
        f"{where} contains a NUL character (\\u0000), which no text field accepts",
        code="nul_character",
        field=path or None,
        source=source,
    )


# -- the endpoint's declared body type ----------------------------------------------------------------


@dataclass(frozen=True)
class BodySpec:
    """What an endpoint's `data` parameter expects."""

    type: Any
    optional: bool

    def expectation(self) -> str:
        struct = _struct_of(self.type)
        if struct is None:
            return "expected a JSON body"
        fields = msgspec.structs.fields(struct)
        names = [f"`{f.encode_name}`{' (required)' if f.required else ''}" for f in fields]
        listed = ", ".join(names) if names else "no fields"
        return f"expected a JSON object with {listed}"


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    if get_origin(annotation) is Union:
        structs = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, msgspec.Struct)]
        return structs[0] if len(structs) == 1 else None
    return None


# Keyed by the handler's function: the same for every app built from the same code (tests build many),
# and weak, so the functions of apps built from closures do not pile up.
_SPECS: weakref.WeakKeyDictionary[Any, BodySpec | None] = weakref.WeakKeyDictionary()


def body_spec(handler: BaseRouteHandler) -> BodySpec | None:
    """The handler's body type, or None when it takes no `data` (computed once per handler function)."""
    key = handler.fn
    if key not in _SPECS:
        field = handler.parsed_fn_signature.parameters.get("data")
        if field is None:
            _SPECS[key] = None
        else:
            optional = field.is_optional or field.has_default
            _SPECS[key] = BodySpec(type=field.annotation, optional=optional)
    return _SPECS[key]


# msgspec ends its messages with " - at `$.a.b[0]`", or " - at `key` in `$.metadata`" for a dict key.
_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL)


def convert_strictly(value: Any, spec: BodySpec) -> None:
    """Validate the decoded body against the endpoint's type in msgspec's strict mode: the lax
    conversion Litestar does afterwards can then only reproduce the same values."""
    try:
        msgspec.convert(value, spec.type, strict=True, str_keys=True)
    except TypeError:
        # A body type msgspec cannot convert by itself (one Litestar handles with a type decoder): its
        # own conversion stays the only check.
        return
    except msgspec.ValidationError as exc:
        match = _AT_PATH.match(str(exc))
        message = match.group("message") if match else str(exc)
        path = (match.group("path") or "").lstrip(".") if match else ""
        path = path.replace("[...]", "")
        missing = re.match(r"Object missing required field `([^`]+)`", message)
        if missing:  # name the missing field itself, not the object that lacks it
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        if match and match.group("key"):
            message = f"a key: {message}"
        detail = f"{path}: {message}" if path else message
        path = path or None
        raise InvalidInput(detail, code="validation_failed", field=path) from None


# -- the hook -----------------------------------------------------------------------------------------


# Forward auth receives the proxied request's own path and query, which its normaliser judges (and must
# answer 401/403: nginx turns any other status of an auth subrequest into a 500 for the user).
PASS_THROUGH_PREFIXES = ("/v1/authz/forward",)


def refuse_nul_in_parameters(request: Request[Any, Any, Any]) -> None:
    if request.scope["path"].startswith(PASS_THROUGH_PREFIXES):
        return
    for name, value in request.query_params.multi_items():
        if NUL in name or NUL in value:
            raise _nul(name.replace(NUL, "\\u0000"), source="query")
    for name, value in request.path_params.items():
        if isinstance(value, str) and NUL in value:
            raise _nul(name, source="path")


class PayloadTooLarge(HTTPException):
    status_code = 413


async def _read_body(request: Request[Any, Any, Any]) -> bytes:
    try:
        return await request.body()
    except HTTPException as exc:
        if exc.status_code != 413:
            raise
        limit = request.route_handler.resolve_request_max_body_size()
        raise PayloadTooLarge(detail=f"request body larger than {limit} bytes") from None


async def check_request(request: Request[Any, Any, Any]) -> None:
    """The app's `before_request` hook: runs after authentication and before any dependency or handler."""
    refuse_nul_in_parameters(request)
    spec = body_spec(request.route_handler)
    if spec is None:
        return
    raw = await _read_body(request)
    if not raw.strip():
        if spec.optional:
            return
        raise InvalidInput(f"request body is empty; {spec.expectation()}", code="body_empty")
    settings = request.app.state.get("settings")
    max_depth = getattr(settings, "request_max_json_depth", DEFAULT_MAX_JSON_DEPTH)
    value = decode_json(raw, max_depth=max_depth)
    if spec.type is not Any and not (value is None and spec.optional):
        convert_strictly(value, spec)
    # Litestar reads the decoded body from here instead of decoding it a second time.
    ScopeState.from_scope(request.scope).json = value
