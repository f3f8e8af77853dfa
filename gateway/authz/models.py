"""Policy store tables. Policy rules are the platform's, not a tenant's: every tenant is judged by the same
rules (custom-role permissions name their tenant inside the rule, and only platform keys edit them).

`policy_versions` is the history and the source of truth: each row holds the complete rule list of its
version, so any version can be read or restored exactly. `casbin_rule` is the published projection of the
latest version in Casbin's own adapter format, for Casbin tooling (`casbin_async_sqlalchemy_adapter`).
WARNING: `PolicyService` rewrites `casbin_rule` in the same transaction as every new version; a row
written there by anything else (an enforcer's `add_policy`) is invisible to Tiergate and lost at the next
publish.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from casbin_async_sqlalchemy_adapter import create_casbin_rule_model
from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base

# Casbin's rule table (ptype, v0..v5), declared on our Base so alembic manages it with everything else.
CasbinRule: Any = create_casbin_rule_model(Base)


class PolicyVersion(Base):
    __tablename__ = "policy_versions"

    # Numbered by the service (latest + 1). The primary key is what stops two concurrent publishes from
    # both becoming version N+1: the second one's insert fails and its whole transaction rolls back.
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    author: Mapped[str | None] = mapped_column(String(40))  # API key id; NULL for the seeded default
    note: Mapped[str | None] = mapped_column(Text)
    # Casbin lines as arrays, e.g. ["p", "role:editor", "*", "projects/*", "update", "allow"].
    rules: Mapped[list[Any]]
    # {"added": [line, ...], "removed": [line, ...]} against the previous version.
    diff: Mapped[dict[str, Any]]
