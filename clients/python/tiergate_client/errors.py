"""Errors the client raises. Tiergate answers every error as RFC 9457 problem+json; `ApiError` carries it."""

from __future__ import annotations

from typing import Any


class TiergateError(Exception):
    """Base class of everything this package raises."""


class ApiError(TiergateError):
    """A 4xx/5xx answer. `code` is Tiergate's stable machine code (`customer_not_found`, ...)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code: str | None = problem.get("code")
        self.detail: str | None = problem.get("detail")
        super().__init__(f"{status} {self.code or problem.get('title', '')}: {self.detail or ''}".strip())


class ConnectionFailed(TiergateError):
    """No answer after the retries the call allowed (network error, timeout, 502/503/504)."""


class TokenInvalid(TiergateError):
    """An end-user token that does not verify (signature, issuer, expiry, missing claims)."""
