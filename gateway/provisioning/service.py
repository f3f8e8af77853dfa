"""Accounts follow the subscription: lifecycle events from the outbox drive provisioning.

| subscription event / status            | what happens                                                  |
|----------------------------------------|---------------------------------------------------------------|
| created                                | account provisioned: owner membership (the customer's e-mail) |
|                                        | if there is none, `customer.provisioned` event                |
| plan_changed, created again (a return) | members whose role the new tier lacks → the tier's default    |
|                                        | role (`member.updated`, sent as `member.role_changed`)        |
| past_due                               | grace starts; `past_due_grace_days` later → revoked           |
| paused, canceled, expired              | revoked: tenant tokens refused, tenant API keys disabled,     |
|                                        | sessions ended, SCIM tokens disabled; data kept               |
| active / trialing again (resume, paid) | restored: keys and SCIM tokens back, new tokens accepted      |
| canceled/expired, retention over       | purged (`purge_expired`): personal data erased, credentials   |
|                                        | retired; customer, invoices and audit log kept                |

Everything here runs inside a relay consumer's transaction and is idempotent: the account row records
the state reached, so a re-delivered event finds nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.authz.domain import plan_unlocks
from gateway.authz.service import PolicyService
from gateway.catalog import CatalogService
from gateway.catalog.repository import CatalogRepository
from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.customers.repository import CustomerRepository
from gateway.customers.service import AlreadyMember
from gateway.db.outbox import OutboxEvent, record_event
from gateway.db.session import Database, after_commit
from gateway.entitlements.loader import load_tenants
from gateway.identity.revocation import RevocationService
from gateway.kernel.clock import Clock, isoformat_or_none
from gateway.kernel.events import DomainEvent
from gateway.provisioning.hooks import AccessHook, SessionsHook
from gateway.provisioning.models import TenantAccount
from gateway.provisioning.privacy import PrivacyService
from gateway.provisioning.repository import ProvisioningRepository
from gateway.subscriptions import SubscriptionService
from gateway.subscriptions.repository import SubscriptionRepository

log = logging.getLogger("tiergate.provisioning")

ACCESS = frozenset({"active", "trialing"})
REVOKING = frozenset({"paused", "canceled", "expired", "incomplete", "incomplete_expired", "unpaid"})


@dataclass(frozen=True, slots=True)
class ProvisioningSettings:
    past_due_grace_days: int = 7
    deprovisioned_retention_days: int = 90


class Provisioner:
    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: ProvisioningSettings | None = None,
        hooks: Sequence[AccessHook] = (),
        on_keys_disabled: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.settings = settings or ProvisioningSettings()
        self.hooks = list(hooks)
        self.on_keys_disabled = on_keys_disabled
        self.repo = ProvisioningRepository(session)
        self.customers = CustomerService(CustomerRepository(session), clock)
        self.revocations = RevocationService(session, clock)

    # -- the relay consumer ----------------------------------------------------------------------
    async def handle(self, event: OutboxEvent) -> None:
        if not event.type.startswith("subscription.") or event.tenant_id is None:
            return
        snapshot: dict[str, Any] = (event.data or {}).get("subscription") or {}
        status = snapshot.get("status")
        tenant_id = event.tenant_id
        account = await self._account(tenant_id)
        version = int(snapshot.get("version") or 0)
        same_sub = account.subscription_id == snapshot.get("id")
        if same_sub and version < account.subscription_version:
            return  # an older snapshot of the subscription we already followed further
        if event.type != "subscription.created" and not same_sub and account.subscription_id is not None:
            # An event of an older subscription of this tenant (e.g. the one a new one replaced).
            return
        account.subscription_id = snapshot.get("id")
        account.subscription_version = version
        account.updated_at = self.clock.now()

        if event.type == "subscription.created":
            returning = account.provisioned_at is not None
            await self._provision(account, event)
            if returning:
                # Coming back (a new subscription for an account provisioned before, e.g. after a
                # cancel): the new plan may be smaller, so roles are clamped as on a downgrade, and the
                # account reports the plan it is on now.
                await self._clamp_roles(tenant_id)
        if event.type == "subscription.plan_changed":
            await self._clamp_roles(tenant_id)

        if status in ACCESS:
            account.past_due_since = None
            if account.state in ("revoked", "purged"):
                await self.restore(account, reason=f"subscription_{status}", at=event.occurred_at)
        elif status == "past_due":
            if account.past_due_since is None:
                account.past_due_since = event.occurred_at
            await self._grace_check(account, event.occurred_at)
        elif status in REVOKING:
            retain = None
            if status in ("canceled", "expired", "incomplete_expired"):
                retain = event.occurred_at + timedelta(days=self.settings.deprovisioned_retention_days)
            await self.revoke(
                account, reason=f"subscription_{status}", at=event.occurred_at, retain_until=retain
            )
        await self.repo.flush()

    async def _account(self, tenant_id: str) -> TenantAccount:
        account = await self.repo.account(tenant_id)
        if account is None:
            account = TenantAccount(
                tenant_id=tenant_id,
                state="active",
                subscription_version=0,
                details={},
                updated_at=self.clock.now(),
            )
            self.repo.add(account)
            await self.repo.flush()
        return account

    # -- provisioning ----------------------------------------------------------------------------
    async def _members(self, tenant_id: str) -> list[Any]:
        out: list[Any] = []
        after: str | None = None
        while True:
            page = await self.customers.list_members(tenant_id, after=after, limit=100, include_removed=False)
            out.extend(page.items)
            if page.next_cursor is None or not page.items:
                return out
            after = page.items[-1][0].id

    async def _provision(self, account: TenantAccount, event: OutboxEvent) -> None:
        if account.provisioned_at is not None:
            return
        customer = await self.customers.get(account.tenant_id)
        members = await self._members(customer.id)
        owner = next((u for m, u in members if m.role == "owner"), None)
        if owner is None and customer.email:
            try:
                _, owner = await self.customers.add_member(
                    customer.id, email=customer.email, name=None, role="owner"
                )
            except AlreadyMember:  # the e-mail is a member with another role: leave their role alone
                owner = None
        loaded = await load_tenants(self.session, [customer.id])
        entitlements = loaded.tenants.get(customer.id)
        plan_key = entitlements.plan_key if entitlements else None
        quotas = (
            {k: f.limit for k, f in sorted(entitlements.features.items()) if f.kind.value != "boolean"}
            if entitlements
            else {}
        )
        allowed = await self._allowed_roles(customer.id, plan_key) if plan_key else None
        account.provisioned_at = event.occurred_at
        account.plan_key = plan_key
        data = {
            "customer": customer.id,
            "subscription": account.subscription_id,
            "plan": plan_key,
            "owner": owner.id if owner else None,
            "default_role": self._default_role(customer, allowed)
            if allowed is not None
            else customer.default_role,
            "roles": sorted(allowed) if allowed is not None else [],
            "quotas": quotas,
        }
        account.details = data
        await record_event(
            self.session,
            DomainEvent(
                "customer.provisioned",
                "customer",
                customer.id,
                event.occurred_at,
                data=data,
                tenant_id=customer.id,
            ),
        )

    async def _allowed_roles(self, tenant_id: str, plan_key: str) -> frozenset[str] | None:
        """Roles the tenant's tier hands out, or None when the policy does not know the plan (then
        nothing is clamped: an empty or foreign policy must not strip every member's role)."""
        policy = await PolicyService(self.session, self.clock).current()
        unlocks = plan_unlocks(policy).get(plan_key)
        if unlocks is None:
            return None
        roles = set(unlocks.roles)
        if unlocks.custom_roles:
            roles |= {p.role for p in policy.permissions if p.tenant_id == tenant_id}
        return frozenset(roles)

    @staticmethod
    def _default_role(customer: Customer, allowed: frozenset[str]) -> str | None:
        if customer.default_role in allowed:
            return customer.default_role
        if "viewer" in allowed:
            return "viewer"
        return min(allowed) if allowed else None

    async def _clamp_roles(self, tenant_id: str) -> None:
        loaded = await load_tenants(self.session, [tenant_id])
        entitlements = loaded.tenants.get(tenant_id)
        if entitlements is None:
            return
        account = await self._account(tenant_id)
        account.plan_key = entitlements.plan_key  # every view reports the plan the tenant is on now
        allowed = await self._allowed_roles(tenant_id, entitlements.plan_key)
        if allowed is None:
            log.warning(
                "plan %s is not in the policy; roles of %s left as they are", entitlements.plan_key, tenant_id
            )
            return
        customer = await self.customers.get(tenant_id)
        default = self._default_role(customer, allowed)
        if default is None:
            return
        for membership, _user in await self._members(tenant_id):
            if membership.role not in allowed:
                await self.customers.change_role(tenant_id, membership.id, default)

    # -- revoking and restoring ------------------------------------------------------------------
    async def _grace_check(self, account: TenantAccount, now: datetime) -> bool:
        since = account.past_due_since
        if since is None or account.state == "revoked":
            return False
        if now - since < timedelta(days=self.settings.past_due_grace_days):
            return False
        await self.revoke(account, reason="past_due_grace_expired", at=now, retain_until=None)
        return True

    async def revoke(
        self, account: TenantAccount, *, reason: str, at: datetime, retain_until: datetime | None
    ) -> None:
        if retain_until is not None:
            account.retain_until = retain_until
        if account.state == "revoked":
            return
        now = self.clock.now()
        keys = await self.repo.disable_tenant_keys(account.tenant_id, now)
        counts: dict[str, Any] = {"api_keys_disabled": len(keys)}
        for hook in self.hooks:
            counts[hook.name] = await hook.revoke(self.session, account.tenant_id)
        account.state, account.revoked_at, account.revoked_reason = "revoked", at, reason
        account.updated_at = now
        await self.revocations.revoke_tenant(
            account.tenant_id,
            reason=reason,
            at=at,
            data={
                **counts,
                "subscription": account.subscription_id,
                "retain_until": isoformat_or_none(account.retain_until),
            },
        )
        if keys and self.on_keys_disabled is not None:
            # After commit: dropped earlier, a request in between caches the still-active key again.
            forget = self.on_keys_disabled
            after_commit(self.session, lambda: forget(keys))

    async def restore(self, account: TenantAccount, *, reason: str, at: datetime) -> None:
        """Access again. After a purge nothing disabled comes back (there is nothing left to restore):
        the tenant's tokens are accepted again and provisioning starts over (`provisioned_at` is unset)."""
        if account.state not in ("revoked", "purged"):
            return
        keys = await self.repo.restore_tenant_keys(account.tenant_id)
        counts: dict[str, Any] = {"api_keys_restored": len(keys)}
        for hook in self.hooks:
            counts[hook.name.replace("disabled", "restored")] = await hook.restore(
                self.session, account.tenant_id
            )
        account.state, account.restored_at, account.retain_until = "active", at, None
        account.updated_at = self.clock.now()
        await self.revocations.restore_tenant(
            account.tenant_id, reason=reason, at=at, data={**counts, "subscription": account.subscription_id}
        )

    async def purge(self, account: TenantAccount, at: datetime) -> dict[str, Any]:
        """The retention ran out: the tenant's personal data goes, its business records stay.

        Members who belong to no other tenant are erased as a GDPR erasure does (pseudonymised, sessions
        ended, tokens refused); members of other tenants only leave this one. Pending invites are
        deleted; disabled API keys and SCIM tokens stay disabled for good. Invoices, credit notes,
        subscriptions and the audit log are kept: they are the vendor's records, with their own legal
        periods. The account stays revoked, in state "purged"; a new subscription provisions it anew.
        """
        privacy = PrivacyService(self.session, self.clock, self._sessions_store())
        erased = left = 0
        for membership, user in await self._members(account.tenant_id):
            if await privacy.member_elsewhere(user.id, account.tenant_id):
                await self.customers.remove_member(account.tenant_id, membership.id)
                left += 1
            else:
                await privacy.erase(user.id)
                erased += 1
        counts: dict[str, Any] = {
            "users_erased": erased,
            "members_removed": left,
            "invites_deleted": await self.repo.delete_pending_invites(account.tenant_id),
            "api_keys_retired": await self.repo.forget_disabled_keys(account.tenant_id),
        }
        for hook in self.hooks:
            counts[hook.name.replace("disabled", "retired")] = await hook.purge(
                self.session, account.tenant_id
            )
        account.state, account.purged_at, account.provisioned_at = "purged", at, None
        account.updated_at = self.clock.now()
        data = {
            "customer": account.tenant_id,
            "retain_until": isoformat_or_none(account.retain_until),
            **counts,
        }
        await record_event(
            self.session,
            DomainEvent(
                "customer.data_purged",
                "customer",
                account.tenant_id,
                at,
                data=data,
                tenant_id=account.tenant_id,
            ),
        )
        await self.repo.flush()
        return data

    def _sessions_store(self) -> Any | None:
        return next((h.store for h in self.hooks if isinstance(h, SessionsHook)), None)


async def purge_expired(
    db: Database,
    clock: Clock,
    settings: ProvisioningSettings | None = None,
    hooks: Sequence[AccessHook] = (),
) -> int:
    """Job: purge the tenants whose retention has run out on their own time (a test clock's time for
    customers on one). One transaction per tenant: a tenant that fails is logged and retried on the
    next tick, and does not hold back the others. Returns the number purged."""
    async with db.unit_of_work(read_only=True) as session:  # each purge writes on its own
        due = await ProvisioningRepository(session).accounts_to_purge(clock.now())
    purged = 0
    for tenant_id, now in due:
        try:
            async with db.unit_of_work(actor="system:retention_purge") as session:
                provisioner = Provisioner(session, clock, settings, hooks)
                account = await provisioner.repo.account(tenant_id)
                if account is None or account.state != "revoked" or account.retain_until is None:
                    continue  # restored or purged meanwhile
                if account.retain_until > now:
                    continue  # revoked again meanwhile, with a later retention date
                await provisioner.purge(account, now)
                purged += 1
        except Exception:
            log.exception("retention purge of %s failed; retried on the next tick", tenant_id)
    return purged


def _subscriptions(session: AsyncSession, clock: Clock, provisioner: Provisioner) -> SubscriptionService:
    return SubscriptionService(
        SubscriptionRepository(session),
        CatalogService(CatalogRepository(session), clock),
        provisioner.customers,
        clock,
    )


async def sweep_past_due(
    db: Database,
    clock: Clock,
    settings: ProvisioningSettings | None = None,
    hooks: Sequence[AccessHook] = (),
    on_keys_disabled: Callable[[list[str]], None] | None = None,
) -> int:
    """Job: revoke tenants whose past-due grace has run out on their own time (a test clock's time for
    customers on one). Returns the number revoked."""
    revoked = 0
    async with db.unit_of_work(actor="system:past_due_sweep") as session:
        provisioner = Provisioner(session, clock, settings, hooks, on_keys_disabled)
        subscriptions = _subscriptions(session, clock, provisioner)
        for account in await provisioner.repo.past_due_accounts():
            customer = await provisioner.customers.get(account.tenant_id)
            now = await subscriptions.now_for(customer.test_clock_id)
            if await provisioner._grace_check(account, now):
                revoked += 1
    return revoked
