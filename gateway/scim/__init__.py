"""SCIM 2.0 for enterprise IdPs: per-tenant tokens, Users (= memberships) and Groups (= role groups).

Public: `ScimTokenService` (create/list/disable tokens; `disable_all_for_tenant` / `restore_for_tenant`
for provisioning) and `ScimService` (the SCIM use cases).
"""

from gateway.scim.service import ScimService, ScimTokenService

__all__ = ["ScimService", "ScimTokenService"]
