"""SCIM use cases: tokens, Users (= memberships) and Groups (= role groups), on scim2-models resources.

A request's resource is loaded from the tables into a scim2-models object, PUT/PATCH semantics are
applied to it by scim2-models (`Resource.replace`, `PatchOp.patch`), and the difference between the old
and the new object is written back. So every PATCH path scim2-models understands works, and what the
IdP reads back is exactly what was stored.

Errors are scim2-models `SCIMException`s (status + scimType); the SCIM edge renders them as SCIM
Error responses. Raising (never returning an error) is what rolls the request's transaction back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from scim2_models import (
    Context,
    ForbiddenException,
    InvalidValueException,
    NotFoundException,
    PatchOp,
    ScimFilter,
    SearchRequest,
    UnauthorizedException,
    UniquenessException,
)
from scim2_models.path.expressions import Comparison
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import NodeKind, PolicySnapshot, plan_unlocks
from gateway.authz.service import PolicyService
from gateway.customers import CustomerService
from gateway.customers.models import Customer, Membership
from gateway.customers.models import User as UserRow
from gateway.customers.repository import CustomerRepository
from gateway.db.outbox import record_change
from gateway.entitlements.engine import Engine
from gateway.entitlements.seats import SEATS_FEATURE, MemberAdmission
from gateway.entitlements.seats import SeatLimitReached as SeatsFull
from gateway.identity.revocation import RevocationService
from gateway.kernel.clock import Clock, format_timestamp
from gateway.kernel.errors import DomainError
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page, encode_cursor
from gateway.scim import domain
from gateway.scim.models import ScimGroup, ScimToken, ScimUser
from gateway.scim.repository import ScimRepository
from gateway.scim.repository import UserRow as Row
from gateway.scim.resources import Group, User

# last_used_at is written at most this often per token, so SCIM traffic does not turn into token writes.
LAST_USED_GRANULARITY = timedelta(minutes=1)
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_PROFILE_KEYS = ("name", "displayName", "emails")


class ScimTokenDisabled(UnauthorizedException):
    pass


class SeatLimitReached(ForbiddenException):
    """403 with a scimType so an IdP shows the reason; nothing was created or activated."""

    scim_type = "seatLimitReached"


class TenantWithoutAccess(ForbiddenException):
    pass


@dataclass(frozen=True, slots=True)
class ScimCaller:
    tenant_id: str
    token_id: str


# --- tokens ----------------------------------------------------------------------------------------


class ScimTokenService:
    """Per-tenant SCIM bearer tokens. Public API for the provisioning helper:
    `disable_all_for_tenant` when access is revoked, `restore_for_tenant` when it returns."""

    def __init__(self, session: AsyncSession, clock: Clock) -> None:
        self.repo = ScimRepository(session)
        self.clock = clock

    async def create(self, tenant_id: str, *, name: str | None = None) -> tuple[ScimToken, str]:
        secret = domain.new_token_secret()
        token = ScimToken(
            id=new_id("scimtok"),
            tenant_id=tenant_id,
            name=name,
            prefix=secret[: domain.TOKEN_PREFIX_LENGTH],
            secret_hash=domain.hash_token(secret),
            created_at=self.clock.now(),
        )
        self.repo.add(token)
        await self.repo.flush()
        await record_change(
            self.repo.session,
            "scim_token.created",
            "scim_token",
            token.id,
            token.created_at,
            tenant_id=tenant_id,
            name=name,
        )
        return token, secret

    async def list(self, tenant_id: str, *, after: str | None, limit: int) -> Page[ScimToken]:
        return Page.from_overfetch(await self.repo.tokens(tenant_id, after=after, limit=limit), limit)

    async def disable(self, tenant_id: str, token_id: str) -> ScimToken:
        token = await self.repo.token(tenant_id, token_id)
        if token is None:
            raise _TokenNotFound(f"no SCIM token {token_id!r}")
        if token.disabled_at is None or token.disabled_reason == domain.DEPROVISIONED:
            # An admin's revocation is final: it also keeps a later reactivation from restoring it.
            token.disabled_at = token.disabled_at or self.clock.now()
            token.disabled_reason = domain.REVOKED
            await self.repo.flush()
            await record_change(
                self.repo.session,
                "scim_token.revoked",
                "scim_token",
                token.id,
                token.disabled_at,
                tenant_id=tenant_id,
            )
        return token

    async def disable_all_for_tenant(self, tenant_id: str) -> int:
        """Deprovisioning: every enabled token of the tenant stops working. Returns how many."""
        count = await self.repo.disable_tokens(tenant_id, self.clock.now(), domain.DEPROVISIONED)
        await self.repo.flush()
        return count

    async def restore_for_tenant(self, tenant_id: str) -> int:
        """Reactivation: tokens that deprovisioning disabled work again; revoked ones stay revoked."""
        count = await self.repo.restore_tokens(tenant_id, domain.DEPROVISIONED)
        await self.repo.flush()
        return count

    enable_all_for_tenant = restore_for_tenant

    async def purge_for_tenant(self, tenant_id: str) -> int:
        """Retention over: tokens deprovisioning disabled stay disabled, whatever happens later."""
        count = await self.repo.retire_tokens(tenant_id, domain.DEPROVISIONED, domain.PURGED)
        await self.repo.flush()
        return count

    async def authenticate(self, secret: str) -> ScimCaller:
        token = await self.repo.token_by_hash(domain.hash_token(secret))
        if token is None:
            raise UnauthorizedException(detail="invalid SCIM token")
        if token.disabled_at is not None:
            raise ScimTokenDisabled(detail="this SCIM token is disabled")
        now = self.clock.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_GRANULARITY:
            token.last_used_at = now
            await self.repo.flush()
        return ScimCaller(token.tenant_id, token.id)


class _TokenNotFound(DomainError):
    code = "scim_token_not_found"
    status = 404
    title = "Resource not found"


# --- users and groups ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListResult:
    total: int
    start_index: int
    resources: list[Any]


def _check_email(value: str | None) -> str:
    if not value or not _EMAIL_RE.match(value.strip()):
        raise InvalidValueException(detail="userName must be the user's e-mail address")
    return value.strip()


def _iso(at: datetime) -> str:
    return format_timestamp(at)


class ScimService:
    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        engine: Engine,
        base_url: str,
        group_roles: Mapping[str, str] | None = None,
    ) -> None:
        self.repo = ScimRepository(session)
        self.customers = CustomerService(CustomerRepository(session), clock)
        self.policies = PolicyService(session, clock)
        self.admission = MemberAdmission(session, clock)
        self.clock = clock
        self.engine = engine
        self.base_url = base_url.rstrip("/")
        self._policy: PolicySnapshot | None = None
        # Configured displayName → role (`domain.parse_group_roles`), asked before the naming convention.
        self.group_roles = dict(group_roles or {})

    # -- reading ---------------------------------------------------------------------------------
    def location(self, endpoint: str, resource_id: str) -> str:
        return f"{self.base_url}/{endpoint}/{resource_id}"

    async def _to_users(self, tenant_id: str, rows: Sequence[Row]) -> list[User]:
        groups = await self.repo.groups_of(tenant_id, [m.id for m, _, _ in rows])
        return [self._user_resource(m, u, s, groups.get(m.id, [])) for m, u, s in rows]

    def _user_resource(
        self, membership: Membership, user: UserRow, scim: ScimUser | None, groups: Sequence[ScimGroup]
    ) -> User:
        profile: dict[str, Any] = dict(scim.profile) if scim is not None else {}
        user_name = profile.pop("userName", None)
        if not user_name or user_name.lower() != user.email:
            user_name = user.email
        if scim is None:
            # A member added through the API: show what Tiergate knows about them.
            profile = {"emails": [{"value": user.email, "primary": True}]}
            if user.name:
                profile["displayName"] = user.name
        payload: dict[str, Any] = {
            "schemas": [str(User.__schema__)],
            "id": membership.id,
            "externalId": scim.external_id if scim is not None else None,
            "userName": user_name,
            # An IdP that never sent `active` (or removed it) reads it back unassigned; unassigned = active.
            "active": _shown_active(membership, scim),
            **{k: v for k, v in profile.items() if k in _PROFILE_KEYS},
            "groups": [
                {
                    "value": g.id,
                    "$ref": self.location("Groups", g.id),
                    "display": g.display_name,
                    "type": "direct",
                }
                for g in groups
            ]
            or None,
            "meta": {
                "resourceType": "User",
                "created": _iso(scim.created_at if scim is not None else membership.created_at),
                "lastModified": _iso(
                    max(
                        scim.updated_at if scim is not None else membership.created_at,
                        membership.removed_at or membership.created_at,
                    )
                ),
                "location": self.location("Users", membership.id),
            },
        }
        return User.model_validate({k: v for k, v in payload.items() if v is not None})

    async def _group_resources(self, tenant_id: str, groups: Sequence[ScimGroup]) -> list[Group]:
        members = await self.repo.group_member_rows(tenant_id, [g.id for g in groups])
        wanted = {row.membership_id for rows in members.values() for row in rows}
        rows = {m.id: (m, u) for m, u, _ in await self.repo.users(tenant_id, ids=wanted)} if wanted else {}
        out = []
        for g in groups:
            payload: dict[str, Any] = {
                "schemas": [str(Group.__schema__)],
                "id": g.id,
                "displayName": g.display_name,
                "meta": {
                    "resourceType": "Group",
                    "created": _iso(g.created_at),
                    "lastModified": _iso(g.updated_at),
                    "location": self.location("Groups", g.id),
                },
            }
            if g.external_id is not None:
                payload["externalId"] = g.external_id
            listed = [
                {
                    "value": row.membership_id,
                    "$ref": self.location("Users", row.membership_id),
                    "type": "User",
                    "display": row.display or rows[row.membership_id][1].email,
                }
                for row in members.get(g.id, [])
                if row.membership_id in rows
            ]
            if listed:
                payload["members"] = listed
            out.append(Group.model_validate(payload))
        return out

    async def get_user(self, tenant_id: str, user_id: str) -> User:
        rows = await self.repo.users(tenant_id, ids=[user_id])
        if not rows:
            raise NotFoundException(detail=f"no User {user_id!r}")
        return (await self._to_users(tenant_id, rows))[0]

    async def get_group(self, tenant_id: str, group_id: str) -> Group:
        group = await self.repo.group(tenant_id, group_id)
        if group is None:
            raise NotFoundException(detail=f"no Group {group_id!r}")
        return (await self._group_resources(tenant_id, [group]))[0]

    async def search_users(self, tenant_id: str, search: SearchRequest[Any]) -> ListResult:
        narrow = _equality(search.filter, {"username": "email", "externalid": "external_id", "id": "id"})
        if narrow is not None and narrow[0] == "id":
            rows = await self.repo.users(tenant_id, ids=[narrow[1]])
        elif narrow is not None:
            rows = await self.repo.users(tenant_id, **{narrow[0]: narrow[1]})
        else:
            rows = await self.repo.users(tenant_id)
        return _page(await self._to_users(tenant_id, rows), search)

    async def search_groups(self, tenant_id: str, search: SearchRequest[Any]) -> ListResult:
        narrow = _equality(
            search.filter, {"displayname": "display_name", "externalid": "external_id", "id": "id"}
        )
        if narrow is not None and narrow[0] == "id":
            groups = await self.repo.groups(tenant_id, ids=[narrow[1]])
        elif narrow is not None:
            groups = await self.repo.groups(tenant_id, **{narrow[0]: narrow[1]})
        else:
            groups = await self.repo.groups(tenant_id)
        return _page(await self._group_resources(tenant_id, groups), search)

    async def search_all(self, tenant_id: str, search: SearchRequest[Any]) -> ListResult:
        """POST /.search at the root: Users, then Groups, filtered and paged together."""
        users = await self._to_users(tenant_id, await self.repo.users(tenant_id))
        groups = await self._group_resources(tenant_id, await self.repo.groups(tenant_id))
        return _page([*users, *groups], search)

    # -- users -----------------------------------------------------------------------------------
    async def create_user(self, tenant_id: str, resource: User) -> User:
        customer = await self._customer(tenant_id)
        user_name = _check_email(resource.user_name)
        email = user_name.lower()
        existing = await self.repo.membership_of_email(tenant_id, email)
        if existing is not None and (existing[0].status == "active" or existing[2] is not None):
            raise UniquenessException(detail=f"a User with userName {user_name!r} exists")
        active = resource.active is not False
        resource.active = active  # a User created without `active` is active, and reads back so
        if active:
            await self._ensure_seat(tenant_id)
        membership, _ = await self.customers.add_member(
            customer.id, email=email, name=_display(resource), role=None
        )
        if not active:
            await self.customers.remove_member(customer.id, membership.id)
        now = self.clock.now()
        self.repo.add(
            ScimUser(
                membership_id=membership.id,
                tenant_id=tenant_id,
                external_id=resource.external_id,
                profile=_profile(resource, user_name),
                created_at=now,
                updated_at=now,
            )
        )
        await self.repo.flush()
        return await self.get_user(tenant_id, membership.id)

    async def replace_user(self, tenant_id: str, user_id: str, replacement: User) -> User:
        current = await self.get_user(tenant_id, user_id)
        replacement.id = current.id
        replacement.replace(current)
        return await self._store_user(tenant_id, current, replacement)

    async def patch_user(self, tenant_id: str, user_id: str, patch: PatchOp[Any]) -> User:
        current = await self.get_user(tenant_id, user_id)
        patched = current.model_copy(deep=True)
        patch.patch(patched)
        return await self._store_user(tenant_id, current, patched)

    async def delete_user(self, tenant_id: str, user_id: str) -> None:
        rows = await self.repo.users(tenant_id, ids=[user_id])
        if not rows:
            raise NotFoundException(detail=f"no User {user_id!r}")
        membership, _, scim = rows[0]
        if membership.status == "active":
            await self.customers.remove_member(tenant_id, membership.id)
            await self._revoke_tokens(membership.user_id)
        await self.repo.leave_all_groups(tenant_id, membership.id)
        if scim is not None:
            await self.repo.delete_row(scim)
        await self.repo.flush()

    async def _store_user(self, tenant_id: str, before: User, after: User) -> User:
        rows = await self.repo.users(tenant_id, ids=[before.id or ""])
        if not rows:
            raise NotFoundException(detail=f"no User {before.id!r}")
        membership, user, scim = rows[0]
        user_name = _check_email(after.user_name)
        if user_name.lower() != user.email:
            await self._change_email(tenant_id, membership, user_name.lower())
        now = self.clock.now()
        if scim is None:
            scim = ScimUser(
                membership_id=membership.id, tenant_id=tenant_id, created_at=membership.created_at
            )
            self.repo.add(scim)
        scim.external_id = after.external_id
        scim.profile = _profile(after, user_name)
        scim.updated_at = now
        was_active, active = membership.status == "active", after.active is not False
        if active and not was_active:
            await self._ensure_seat(tenant_id)
            await self.customers.add_member(tenant_id, email=user_name.lower(), name=None, role=None)
            await self._sync_roles(tenant_id, [membership.id])
        elif was_active and not active:
            await self.customers.remove_member(tenant_id, membership.id)
            await self._revoke_tokens(membership.user_id)
        await self.repo.flush()
        return await self.get_user(tenant_id, membership.id)

    async def _revoke_tokens(self, user_id: str) -> None:
        """A deactivation is final for the tokens issued before it: `active: true` later restores the
        membership, not those tokens; the user signs in again for a new one. The revocation list keeps
        per-user entries, so this refuses the user's earlier tokens in every tenant (they live minutes)."""
        await RevocationService(self.repo.session, self.clock).revoke_user(user_id, reason="scim_deactivated")

    async def _change_email(self, tenant_id: str, membership: Membership, email: str) -> None:
        taken = await self.repo.membership_of_email(tenant_id, email)
        if taken is not None:
            raise UniquenessException(detail=f"a User with userName {email!r} exists")
        target = await self.repo.user_by_email(email)
        if target is None:
            now = self.clock.now()
            target = UserRow(id=new_id("usr"), email=email, name=None, created_at=now, updated_at=now)
            self.repo.add(target)
            await self.repo.flush()
        await self.repo.repoint_membership(membership, target)

    # -- groups ----------------------------------------------------------------------------------
    async def create_group(self, tenant_id: str, resource: Group) -> Group:
        await self._customer(tenant_id)
        name = _group_name(resource.display_name)
        members = await self._member_ids(tenant_id, resource)
        now = self.clock.now()
        group = ScimGroup(
            id=new_id("grp"),
            tenant_id=tenant_id,
            display_name=name,
            external_id=resource.external_id,
            created_at=now,
            updated_at=now,
        )
        self.repo.add(group)
        await self.repo.flush()
        await self.repo.set_group_members(tenant_id, group.id, list(members), (), members)
        if await self._role_of(tenant_id, name) is not None:
            await self._sync_roles(tenant_id, list(members))
        return await self.get_group(tenant_id, group.id)

    async def replace_group(self, tenant_id: str, group_id: str, replacement: Group) -> Group:
        current = await self.get_group(tenant_id, group_id)
        replacement.id = current.id
        replacement.replace(current)
        return await self._store_group(tenant_id, current, replacement)

    async def patch_group(self, tenant_id: str, group_id: str, patch: PatchOp[Any]) -> Group:
        current = await self.get_group(tenant_id, group_id)
        patched = current.model_copy(deep=True)
        patch.patch(patched)
        return await self._store_group(tenant_id, current, patched)

    async def delete_group(self, tenant_id: str, group_id: str) -> None:
        group = await self.repo.group(tenant_id, group_id)
        if group is None:
            raise NotFoundException(detail=f"no Group {group_id!r}")
        members = (await self.repo.group_members(tenant_id, [group.id])).get(group.id, [])
        had_role = await self._role_of(tenant_id, group.display_name) is not None
        await self.repo.delete_group(group)
        if had_role:
            await self._sync_roles(tenant_id, members)

    async def _store_group(self, tenant_id: str, before: Group, after: Group) -> Group:
        group = await self.repo.group(tenant_id, before.id or "")
        if group is None:
            raise NotFoundException(detail=f"no Group {before.id!r}")
        old_members = set((await self.repo.group_members(tenant_id, [group.id])).get(group.id, []))
        wanted = await self._member_ids(tenant_id, after)
        new_members = set(wanted)
        old_role = await self._role_of(tenant_id, group.display_name)
        group.display_name = _group_name(after.display_name)
        group.external_id = after.external_id
        group.updated_at = self.clock.now()
        await self.repo.set_group_members(
            tenant_id, group.id, sorted(new_members - old_members), sorted(old_members - new_members), wanted
        )
        new_role = await self._role_of(tenant_id, group.display_name)
        if old_role != new_role:
            await self._sync_roles(tenant_id, old_members | new_members)
        elif new_role is not None:
            await self._sync_roles(tenant_id, old_members ^ new_members)
        return await self.get_group(tenant_id, group.id)

    async def _member_ids(self, tenant_id: str, resource: Group) -> dict[str, str | None]:
        """membership id → the display label the IdP gave, for the Group's members (all must exist)."""
        wanted: dict[str, str | None] = {}
        for member in resource.members or []:
            if member.type is not None and str(member.type).lower() == "group":
                raise InvalidValueException(detail="nested groups are not supported: members must be Users")
            value = member.value or (str(member.ref).rstrip("/").rsplit("/", 1)[-1] if member.ref else None)
            if not value:
                raise InvalidValueException(detail="a group member needs a value (the User id)")
            if value not in wanted or member.display:
                wanted[value] = member.display
        if wanted:
            found = {m.id for m, _, _ in await self.repo.users(tenant_id, ids=wanted)}
            missing = [v for v in wanted if v not in found]
            if missing:
                raise InvalidValueException(detail=f"no User {missing[0]!r} in this tenant")
        return wanted

    # -- roles and seats -------------------------------------------------------------------------
    async def _customer(self, tenant_id: str) -> Customer:
        return await self.customers.get(tenant_id)

    async def _policy_snapshot(self) -> PolicySnapshot:
        if self._policy is None:
            self._policy = await self.policies.current()
        return self._policy

    async def _known_roles(self, tenant_id: str) -> set[str]:
        policy = await self._policy_snapshot()
        roles = {p.role for p in policy.permissions if p.tenant_id in (None, tenant_id)}
        roles |= {g.key for g in policy.tier_grants if g.kind is NodeKind.ROLE}
        return roles

    async def _role_of(self, tenant_id: str, display_name: str) -> str | None:
        return domain.role_for_group(display_name, await self._known_roles(tenant_id), self.group_roles)

    async def allowed_roles(self, tenant_id: str) -> frozenset[str]:
        """The roles the tenant's tier lets its members use, asked of the published policy."""
        entitlements = await self._entitlements(tenant_id)
        if entitlements is None:
            return frozenset()
        policy = await self._policy_snapshot()
        unlocks = plan_unlocks(policy).get(entitlements.plan_key)
        if unlocks is None:
            return frozenset()
        roles = set(unlocks.roles)
        if unlocks.custom_roles:
            roles |= {p.role for p in policy.permissions if p.tenant_id == tenant_id}
        return frozenset(roles)

    async def _sync_roles(self, tenant_id: str, membership_ids: Iterable[str]) -> None:
        ids = sorted(set(membership_ids))
        if not ids:
            return
        customer = await self._customer(tenant_id)
        allowed = await self.allowed_roles(tenant_id)
        known = await self._known_roles(tenant_id)
        groups = await self.repo.groups_of(tenant_id, ids)
        for membership, _, _ in await self.repo.users(tenant_id, ids=ids):
            if membership.status != "active":
                continue
            roles = [
                r
                for g in groups.get(membership.id, [])
                if (r := domain.role_for_group(g.display_name, known, self.group_roles))
            ]
            role = domain.effective_role(roles, allowed, customer.default_role)
            if role != membership.role:
                await self.customers.change_role(tenant_id, membership.id, role)

    async def _entitlements(self, tenant_id: str) -> Any:
        entitlements = self.engine.tenant(tenant_id)
        if entitlements is None:
            # The index may not have caught up with a subscription created a moment ago.
            await self.engine.sync()
            entitlements = self.engine.tenant(tenant_id)
        return entitlements

    async def _ensure_seat(self, tenant_id: str) -> None:
        """One more active member must fit the plan's "seats" quota: the one seat check every path that
        activates a member goes through (`gateway/entitlements/seats.py`: counted from the memberships
        under the tenant's lock, on PostgreSQL and on SQLite). A soft limit only meters."""
        entitlements = await self._entitlements(tenant_id)
        if entitlements is None or not self.engine.has_access(tenant_id):
            raise TenantWithoutAccess(detail="the tenant has no subscription that grants access")
        try:
            await self.admission.take_seat(tenant_id)
        except SeatsFull as full:
            raise SeatLimitReached(
                detail=(
                    f"seat quota {SEATS_FEATURE!r} is full: {full.extra['seats_used']} of "
                    f"{full.extra['seats_limit']} seats in use on plan {full.extra['plan']!r}; "
                    "nothing was created"
                )
            ) from None


# --- helpers ---------------------------------------------------------------------------------------


def _shown_active(membership: Membership, scim: ScimUser | None) -> bool | None:
    """The membership decides; an IdP that never sent `active` (or removed it) reads it back
    unassigned, which means active."""
    if membership.status != "active":
        return False
    if scim is None or "active" in scim.profile:
        return True
    return None


def _display(resource: User) -> str | None:
    if resource.display_name:
        return resource.display_name[:200]
    if resource.name is not None and resource.name.formatted:
        return resource.name.formatted[:200]
    return None


def _profile(resource: User, user_name: str) -> dict[str, Any]:
    dumped = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    profile = {k: dumped[k] for k in _PROFILE_KEYS if dumped.get(k) not in (None, [], {})}
    profile["userName"] = user_name
    if resource.active is not None:
        profile["active"] = resource.active
    return profile


def _group_name(value: str | None) -> str:
    if not value or not value.strip():
        raise InvalidValueException(detail="displayName is required")
    if len(value) > 256:
        raise InvalidValueException(detail="displayName is longer than 256 characters")
    return value


def _equality(scim_filter: ScimFilter[Any] | None, columns: dict[str, str]) -> tuple[str, str] | None:
    """`attr eq "value"` on an indexed attribute → (column, value), to narrow the query in SQL. The
    in-memory match still runs afterwards, so this only needs to be a safe superset."""
    if scim_filter is None:
        return None
    node = scim_filter.ast
    if not isinstance(node, Comparison) or node.op.value.lower() != "eq":
        return None
    if not isinstance(node.value, str):
        return None
    if node.attr_path.sub_attr is not None:
        return None
    attr = node.attr_path.attr.lower()
    column = columns.get(attr)
    return (column, node.value) if column else None


def _page(resources: list[Any], search: SearchRequest[Any]) -> ListResult:
    matched = [r for r in resources if search.filter is None or search.filter.match(r)]
    start = max(1, search.start_index or 1)
    count = search.count
    window = matched[start - 1 :] if count is None else matched[start - 1 : start - 1 + max(0, count)]
    return ListResult(total=len(matched), start_index=start, resources=window)


__all__ = ["ScimCaller", "ScimService", "ScimTokenService", "SeatLimitReached", "encode_cursor"]
