"""Domain errors: expected business outcomes with a stable `code` and an HTTP status.

They are rendered once, at the HTTP edge, as RFC 9457 problem+json (`gateway/http_errors.py`). A 500 is
always a bug; anything a client can cause is one of these.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "domain_error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Request could not be completed"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # A more specific stable code for this occurrence (e.g. "price_inactive" for a Conflict).
        self.error_code = code or self.code
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"https://tiergate.dev/problems/{self.error_code.replace('_', '-')}",
            "title": self.title,
            "status": self.status,
            "code": self.error_code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class NotFound(DomainError):
    # Also used across tenants: a resource of another tenant is indistinguishable from a missing one.
    code = "resource_missing"
    status = 404
    title = "Resource not found"


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 422
    title = "Request payload is invalid"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Request conflicts with the current state"


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "State transition not allowed"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    title = "Authentication required"


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    title = "Not allowed"


class PreconditionFailed(DomainError):
    """A conditional request (`If-Match`) named a version that is no longer the current one."""

    code = "precondition_failed"
    status = 412
    title = "Precondition failed"
