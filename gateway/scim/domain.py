"""SCIM rules with no I/O: token secrets, how a group names a role, and which role a member ends up with."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterable, Mapping

# WARNING: changing the prefix breaks nothing stored (only hashes are), but IdP admins recognise tokens by it.
TOKEN_PREFIX = "tg_scim_"
TOKEN_PREFIX_LENGTH = 16  # characters of the secret kept in clear, to recognise a token in lists

# Why a token is disabled. Deprovisioning disables with DEPROVISIONED and reactivation restores exactly
# those; a token an admin revoked stays revoked whatever the subscription does. PURGED: the tenant's
# retention ran out and its data was purged; such a token never comes back.
REVOKED = "revoked"
DEPROVISIONED = "deprovisioned"
PURGED = "purged"

# Most to least privileged catalog role: picks one role when a user sits in several role groups.
# Roles not listed (a tenant's custom roles) rank below these, alphabetically.
ROLE_PRECEDENCE: tuple[str, ...] = ("owner", "admin", "editor", "viewer")

_ROLE_RE = re.compile(r"^[a-z][a-z0-9_\-]{0,59}$")
# Group names IdP admins commonly use for a role: "Admins", "Tiergate Editors", "tiergate-viewer".
_GROUP_PREFIX_RE = re.compile(r"^(tiergate)[\s_\-:]+", re.IGNORECASE)


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> str:
    # 256 random bits: a fast hash is enough (nothing to brute-force), and it runs on every SCIM request.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_group_roles(entries: Iterable[str]) -> dict[str, str]:
    """The `scim_group_roles` setting: "Group Name=role" entries → {group name lower-cased: role}."""
    mapping: dict[str, str] = {}
    for entry in entries:
        name, sep, role = entry.rpartition("=")
        if not sep or not name.strip() or not _ROLE_RE.match(role.strip()):
            raise ValueError(f"scim_group_roles entry {entry!r} is not 'Group Name=role'")
        mapping[name.strip().lower()] = role.strip()
    return mapping


def role_for_group(
    display_name: str, known_roles: Iterable[str], mapping: Mapping[str, str] | None = None
) -> str | None:
    """The role a group stands for, or None for a plain group.

    A configured mapping (`scim_group_roles`: "Engineering=editor") is asked first, by the displayName
    lower-cased; a mapped role the policy does not know is no role.

    A group's displayName names a role when, lower-cased, without a leading "Tiergate " and without a
    plural "s", it is a role the policy knows (a catalog role or one of the tenant's custom roles):
    "Admins", "admin", "Tiergate Editors" → admin / editor. Anything else is a plain group that
    carries no role.
    """
    known = set(known_roles)
    mapped = (mapping or {}).get(display_name.strip().lower())
    if mapped is not None:
        return mapped if mapped in known else None
    name = _GROUP_PREFIX_RE.sub("", display_name.strip()).lower().replace(" ", "_")
    for candidate in (name, name[:-1] if name.endswith("s") else None):
        if candidate and _ROLE_RE.match(candidate) and candidate in known:
            return candidate
    return None


def rank(role: str) -> tuple[int, str]:
    try:
        return (ROLE_PRECEDENCE.index(role), role)
    except ValueError:
        return (len(ROLE_PRECEDENCE), role)


def effective_role(group_roles: Iterable[str], allowed: frozenset[str], default_role: str) -> str:
    """The role a member gets from the role groups they are in, clamped to the tier.

    The most privileged group role the tier allows wins. If the member is in no role group, or only in
    groups for roles the tier lacks, they get the tenant's default role (least privilege: a Basic
    tenant's "Admins" group does not quietly become the next-best role).
    """
    usable = sorted((r for r in set(group_roles) if r in allowed), key=rank)
    return usable[0] if usable else default_role
