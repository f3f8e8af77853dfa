"""What deprovisioning reaches outside this package: sessions (identity.sessions) and SCIM tokens.

Both belong to other packages that may or may not be installed in a given build; each is wrapped in a
hook the composition root passes to the provisioner, so the provisioner never imports them directly.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.kernel.clock import Clock

log = logging.getLogger("tiergate.provisioning")


class AccessHook(Protocol):
    name: str

    async def revoke(self, session: AsyncSession, tenant_id: str) -> int: ...

    async def restore(self, session: AsyncSession, tenant_id: str) -> int: ...

    async def purge(self, session: AsyncSession, tenant_id: str) -> int:
        """Retention over: what `revoke` disabled must never come back. Returns how many."""
        ...


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class SessionsHook:
    """Ends the tenant's server-side sessions (`SessionStore.end_for_tenant`). Ended sessions do not
    come back on restore: users sign in again."""

    name = "sessions_ended"

    def __init__(self, store: Any) -> None:
        self.store = store

    async def revoke(self, session: AsyncSession, tenant_id: str) -> int:
        return int(await _maybe_await(self.store.end_for_tenant(tenant_id)) or 0)

    async def restore(self, session: AsyncSession, tenant_id: str) -> int:
        return 0

    async def purge(self, session: AsyncSession, tenant_id: str) -> int:
        return 0  # ended sessions never come back anyway

    async def end_for_user(self, user_id: str) -> int:
        return int(await _maybe_await(self.store.end_for_user(user_id)) or 0)


class ScimHook:
    """Disables / re-enables the tenant's SCIM bearer tokens (`gateway.scim`'s ScimTokenService)."""

    name = "scim_tokens_disabled"

    def __init__(self, service_class: Any, clock: Clock) -> None:
        self.service_class = service_class
        self.clock = clock

    def _service(self, session: AsyncSession) -> Any:
        return self.service_class(session, self.clock)

    async def revoke(self, session: AsyncSession, tenant_id: str) -> int:
        return int(await _maybe_await(self._service(session).disable_all_for_tenant(tenant_id)) or 0)

    async def restore(self, session: AsyncSession, tenant_id: str) -> int:
        service = self._service(session)
        for name in ("restore_all_for_tenant", "enable_all_for_tenant", "restore_for_tenant", "restore"):
            method = getattr(service, name, None)
            if method is not None:
                return int(await _maybe_await(method(tenant_id)) or 0)
        log.warning("ScimTokenService has no restore method; SCIM tokens of %s stay disabled", tenant_id)
        return 0

    async def purge(self, session: AsyncSession, tenant_id: str) -> int:
        return int(await _maybe_await(self._service(session).purge_for_tenant(tenant_id)) or 0)


def discover_hooks(clock: Clock, *, sessions: Any | None = None) -> list[AccessHook]:
    """The hooks this build can offer: a session store if the app holds one, SCIM if installed."""
    hooks: list[AccessHook] = []
    if sessions is not None and hasattr(sessions, "end_for_tenant"):
        hooks.append(SessionsHook(sessions))
    try:
        # Imported by name: SCIM is optional in a build, and provisioning must work without it.
        scim = importlib.import_module("gateway.scim.service")
    except ImportError:
        scim = None
    service_class = getattr(scim, "ScimTokenService", None)
    if service_class is not None and hasattr(service_class, "disable_all_for_tenant"):
        hooks.append(ScimHook(service_class, clock))
    return hooks
