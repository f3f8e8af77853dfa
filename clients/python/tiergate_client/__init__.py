"""Tiergate's Python client: the API, and permission checks decided in-process (see README.md)."""

from .client import Tiergate
from .decide import Decision, TenantRules
from .errors import ApiError, ConnectionFailed, TiergateError, TokenInvalid
from .local import LocalDecider
from .tokens import EndUser, TokenVerifier

__all__ = [
    "ApiError",
    "ConnectionFailed",
    "Decision",
    "EndUser",
    "LocalDecider",
    "TenantRules",
    "Tiergate",
    "TiergateError",
    "TokenInvalid",
    "TokenVerifier",
]
__version__ = "0.1.0"
