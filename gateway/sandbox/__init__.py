"""The sandbox payment provider: a small provider of its own, spoken to over HTTP (README.md).

It imports only `gateway.kernel`, Litestar, msgspec, httpx and the standard library: Tiergate's domains
are its customer's business, not its own."""

from gateway.sandbox.http import DEFAULT_STORE, MOUNT_PATH, create_sandbox_app, sandbox_mount
from gateway.sandbox.service import CURRENCIES, SandboxConfig

__all__ = [
    "CURRENCIES",
    "DEFAULT_STORE",
    "MOUNT_PATH",
    "SandboxConfig",
    "create_sandbox_app",
    "sandbox_mount",
]
