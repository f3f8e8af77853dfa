"""RFC 9457 problem+json for every error, with a stable `code`. A 500 is always a bug, and says so."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import IntegrityError

from gateway.kernel.errors import Conflict, DomainError

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("tiergate.errors")


class Problem(msgspec.Struct, kw_only=True):
    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def problem_body(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://tiergate.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **{k: v for k, v in extra.items() if v is not None},
    }


def _problem(status: int, code: str, title: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    body = problem_body(status, code, title, detail, **extra)
    headers = {"WWW-Authenticate": 'Bearer realm="tiergate"'} if status == 401 else None
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def domain_problem(exc: DomainError, instance: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The problem body and headers of a domain error (the lean decision routes send the same)."""
    body = exc.to_problem(instance=instance)
    headers = {"WWW-Authenticate": 'Bearer realm="tiergate"'} if exc.status == 401 else {}
    headers.update(getattr(exc, "headers", None) or {})  # e.g. Retry-After on a 503
    return body, headers


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    body, headers = domain_problem(exc, request.url.path)
    return Response(body, status_code=exc.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers or None)


def validation_error_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    # Litestar reports malformed payloads and parameters as 400; our convention is 422 (ARCHITECTURE §5).
    # The central body check (web/bodies.py) says which problem (`code`) and where (`field`).
    errors = exc.extra if isinstance(exc.extra, list) else None
    return _problem(
        422,
        getattr(exc, "code", "validation_failed"),
        "Request payload is invalid",
        str(exc.detail),
        field=getattr(exc, "field", None),
        errors=errors,
        instance=request.url.path,
    )


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if status == 400:
        # Litestar's 400s are all malformed requests (undecodable JSON, bad parameters): 422 by convention.
        return _problem(
            422, "validation_failed", "Request payload is invalid", str(exc.detail), instance=request.url.path
        )
    code = {
        400: "bad_request",
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }.get(status, "http_error")
    if isinstance(exc, NotAuthorizedException):
        code = "unauthenticated"
    elif isinstance(exc, PermissionDeniedException):
        code = "forbidden"
    if status >= 500:
        log.error("HTTP %s on %s: %s", status, request.url.path, exc.detail)
    response = _problem(status, code, exc.detail or "Error", str(exc.detail), instance=request.url.path)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def integrity_error_handler(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[dict[str, Any]]:
    # Reached only when two requests race past the service's own checks: the constraint is the guard.
    log.info("integrity error on %s: %s", request.url.path, exc.orig)
    return domain_error_handler(
        request, Conflict("the request conflicts with a concurrent change", code="conflict")
    )


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _problem(HTTP_500_INTERNAL_SERVER_ERROR, **internal_problem(request.url.path))


def internal_problem(instance: str) -> dict[str, Any]:
    """What a 500 says (a bug; the exception is logged, never shown)."""
    return {
        "code": "internal_error",
        "title": "Internal server error",
        "detail": "an unexpected error occurred; it has been logged",
        "instance": instance,
    }


EXCEPTION_HANDLERS: dict[Any, Any] = {
    DomainError: domain_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    IntegrityError: integrity_error_handler,
    Exception: internal_error_handler,
}


def _spec(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem,
        description=description,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


# Documented on every route so clients (and schemathesis) know the error shape.
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    401: _spec("Missing or invalid API key"),
    403: _spec("The API key lacks the scope for this call"),
    404: _spec("Not found (also for another tenant's resources)"),
    409: _spec("Conflicts with the current state, or an Idempotency-Key reused with another payload"),
    413: _spec("Request body larger than `request_max_body_bytes`"),
    422: _spec("Malformed or invalid payload or parameters"),
}


def problem_spec(description: str) -> ResponseSpec:
    """A problem+json error response for a route's own `responses` (e.g. a 412 beside ERROR_RESPONSES)."""
    return _spec(description)
