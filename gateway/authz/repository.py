"""All policy-store SQL, and the read-only assignment loader of the what-if tool."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.models import CasbinRule, PolicyVersion

_CASBIN_FIELDS = ("v0", "v1", "v2", "v3", "v4", "v5")


class PolicyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def flush(self) -> None:
        await self.session.flush()

    # versions -------------------------------------------------------------------------------------
    async def latest_version(self) -> PolicyVersion | None:
        query = select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(1)
        return (await self.session.scalars(query)).first()

    async def get_version(self, version: int) -> PolicyVersion | None:
        return await self.session.get(PolicyVersion, version)

    async def list_versions(self, *, before: int | None, limit: int) -> Sequence[PolicyVersion]:
        """Newest first; `limit + 1` rows so the caller can tell whether there is more."""
        query = select(PolicyVersion).order_by(PolicyVersion.version.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(PolicyVersion.version < before)
        return (await self.session.scalars(query)).all()

    def add_version(self, row: PolicyVersion) -> None:
        self.session.add(row)

    # the published rule table -----------------------------------------------------------------------
    async def replace_rules(self, lines: Sequence[tuple[str, ...]]) -> None:
        # Replace rather than patch: the table then equals the version's rules even if something else
        # wrote into it since the last publish.
        await self.session.execute(delete(CasbinRule))
        if lines:
            rows = [{"ptype": line[0], **dict(zip(_CASBIN_FIELDS, line[1:], strict=False))} for line in lines]
            await self.session.execute(insert(CasbinRule), rows)

    async def rule_lines(self) -> list[tuple[str, ...]]:
        query = select(CasbinRule.ptype, *(getattr(CasbinRule, f) for f in _CASBIN_FIELDS)).order_by(
            CasbinRule.id
        )
        return [
            tuple(value for value in row if value is not None)
            for row in (await self.session.execute(query)).all()
        ]
