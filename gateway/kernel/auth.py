"""Who a request acts as. Pure; filled in by the identity domain, read by every HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    scopes: frozenset[str]
    tenant_id: str | None  # None = platform-wide
    # A staff session's role (gateway/admin: owner, admin, ...), so a console page offers only what the
    # role may use; None for every other caller.
    role: str | None = None

    def allows(self, needed: str) -> bool:
        if "*" in self.scopes or needed in self.scopes:
            return True
        resource, _, action = needed.partition(":")
        if f"{resource}:*" in self.scopes:
            return True
        # write implies read on the same resource
        return action == "read" and f"{resource}:write" in self.scopes
