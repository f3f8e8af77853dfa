"""Customer use cases: tenant organisations, users, memberships.

`scope` is the tenant a caller is restricted to (a tenant-scoped API key), or None for platform keys.
A customer outside the scope is reported as missing (404), never as forbidden: existence must not leak.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gateway.customers.models import Customer, Membership, User
from gateway.customers.repository import CustomerRepository
from gateway.customers.taxids import normalize_tax_ids
from gateway.db.outbox import record_event
from gateway.i18n import UnsupportedLocale, normalize_locale
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.money import UnknownCurrency, normalize_currency
from gateway.kernel.pagination import Page, encode_cursor

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_\-]{0,59}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}$")
REGION_PATTERN = re.compile(r"^[A-Z0-9]{1,3}$")
TAX_EXEMPT_VALUES = ("none", "exempt", "reverse")
ADDRESS_FIELDS = ("line1", "line2", "city", "postal_code", "region")


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class MemberNotFound(NotFound):
    code = "member_not_found"


class AlreadyMember(Conflict):
    code = "already_member"


def check_role(role: str) -> str:
    if not ROLE_PATTERN.match(role):
        raise ValidationFailed("role must be 1-60 characters of a-z, 0-9, '_', '-'", field="role")
    return role


def check_email(email: str) -> str:
    if not EMAIL_PATTERN.match(email):
        raise ValidationFailed("email is not a valid address", field="email")
    return email.lower()


class CustomerService:
    def __init__(self, repository: CustomerRepository, clock: Clock) -> None:
        self.repo = repository
        self.clock = clock

    async def _event(
        self, type_: str, tenant_id: str, aggregate: str, agg_id: str, data: dict[str, Any]
    ) -> None:
        event = DomainEvent(type_, aggregate, agg_id, self.clock.now(), data=data, tenant_id=tenant_id)
        await record_event(self.repo.session, event)

    # customers ----------------------------------------------------------------------------------
    async def create(
        self,
        *,
        name: str,
        email: str | None = None,
        currency: str | None = None,
        country: str | None = None,
        tax_ids: Sequence[dict[str, str]] = (),
        address: dict[str, str | None] | None = None,
        tax_exempt: str = "none",
        default_role: str = "viewer",
        preferred_locale: str | None = None,
        metadata: dict[str, Any] | None = None,
        test_clock_id: str | None = None,
        scope: str | None = None,
    ) -> Customer:
        if scope is not None:
            # A tenant-scoped key manages its own organisation; it cannot create others.
            raise Forbidden("a tenant-scoped API key cannot create customers", code="scope_too_narrow")
        now = self.clock.now()
        customer = Customer(
            id=new_id("cus"),
            name=name,
            email=check_email(email) if email else None,
            currency=self._currency(currency),
            country=self._country(country),
            tax_ids=normalize_tax_ids(tax_ids),
            tax_exempt=self._tax_exempt(tax_exempt),
            default_role=check_role(default_role),
            preferred_locale=self._locale(preferred_locale),
            test_clock_id=await self._test_clock(test_clock_id),
            metadata_=metadata or {},
            created_at=now,
            updated_at=now,
        )
        self._set_address(customer, address)
        self.repo.add(customer)
        await self.repo.flush()
        await self._event("customer.created", customer.id, "customer", customer.id, {"name": name})
        return customer

    async def _test_clock(self, clock_id: str | None) -> str | None:
        if clock_id is not None and not await self.repo.test_clock_exists(clock_id):
            raise ValidationFailed(f"no test clock {clock_id!r}", field="test_clock")
        return clock_id

    @staticmethod
    def _currency(currency: str | None) -> str | None:
        if currency is None:
            return None
        try:
            return normalize_currency(currency)
        except UnknownCurrency as exc:
            raise ValidationFailed(str(exc), field="currency") from None

    @staticmethod
    def _country(country: str | None) -> str | None:
        if country is None:
            return None
        if not COUNTRY_PATTERN.match(country.upper()):
            raise ValidationFailed("country must be an ISO 3166-1 alpha-2 code", field="country")
        return country.upper()

    @staticmethod
    def _locale(value: str | None) -> str | None:
        """Stored as normalize_locale gives it: `nl-NL` → `nl_NL` (the region is kept, it changes date and
        number details), `NL` → `nl`. A language without complete catalogs (`xx`, `de`) is refused."""
        if value is None:
            return None
        try:
            return normalize_locale(value)
        except UnsupportedLocale as exc:
            raise ValidationFailed(str(exc), field="preferred_locale") from None

    @staticmethod
    def _tax_exempt(value: str) -> str:
        if value not in TAX_EXEMPT_VALUES:
            raise ValidationFailed(
                f"tax_exempt must be one of {', '.join(TAX_EXEMPT_VALUES)}", field="tax_exempt"
            )
        return value

    @staticmethod
    def _set_address(customer: Customer, address: dict[str, str | None] | None) -> None:
        """Replace the whole address (None clears it). Blank strings count as absent."""
        values = {k: (v.strip() or None) if isinstance(v, str) else None for k, v in (address or {}).items()}
        unknown = set(values) - set(ADDRESS_FIELDS)
        if unknown:
            raise ValidationFailed(f"unknown address fields: {sorted(unknown)}", field="address")
        region = values.get("region")
        if region is not None:
            region = region.upper()
            country = customer.country
            if country and region.startswith(f"{country}-"):
                region = region[len(country) + 1 :]
            if not REGION_PATTERN.match(region):
                raise ValidationFailed(
                    "address.region must be an ISO 3166-2 subdivision code such as CA or US-CA",
                    field="address.region",
                )
        customer.address_line1 = values.get("line1")
        customer.address_line2 = values.get("line2")
        customer.address_city = values.get("city")
        customer.address_postal_code = values.get("postal_code")
        customer.address_region = region

    async def load_many(self, customer_ids: Sequence[str]) -> dict[str, Customer]:
        """Load several customers in one query (a batch job's prefetch: later `get`s of them are served
        from the session's identity map without a round trip)."""
        return {c.id: c for c in await self.repo.get_many(sorted(set(customer_ids)))}

    async def get(self, customer_id: str, *, scope: str | None = None) -> Customer:
        if scope is not None and customer_id != scope:
            raise CustomerNotFound(f"no customer {customer_id!r}")
        customer = await self.repo.get(customer_id)
        if customer is None:
            raise CustomerNotFound(f"no customer {customer_id!r}")
        return customer

    async def list(
        self,
        *,
        after: str | None,
        limit: int,
        scope: str | None,
        email: str | None = None,
        test_clock_id: str | None = None,
        q: str | None = None,
    ) -> Page[Customer]:
        rows = await self.repo.list(
            after=after, limit=limit, only=scope, email=email, test_clock_id=test_clock_id, q=q
        )
        return Page.from_overfetch(rows, limit)

    async def update(
        self, customer_id: str, changes: dict[str, Any], *, scope: str | None = None
    ) -> Customer:
        customer = await self.get(customer_id, scope=scope)
        if "currency" in changes:
            # Billing (rule 23) will refuse this once the first invoice has fixed the currency.
            customer.currency = self._currency(changes["currency"])
        if "email" in changes:
            customer.email = check_email(changes["email"]) if changes["email"] else None
        if "country" in changes:
            customer.country = self._country(changes["country"])
        if "default_role" in changes:
            customer.default_role = check_role(changes["default_role"])
        if "name" in changes:
            customer.name = changes["name"]
        if "tax_ids" in changes:
            customer.tax_ids = normalize_tax_ids(changes["tax_ids"])
        if "tax_exempt" in changes:
            customer.tax_exempt = self._tax_exempt(changes["tax_exempt"])
        if "address" in changes:
            self._set_address(customer, changes["address"])
        if "preferred_locale" in changes:
            customer.preferred_locale = self._locale(changes["preferred_locale"])
        if "metadata" in changes:
            customer.metadata_ = changes["metadata"]
        customer.updated_at = self.clock.now()
        await self.repo.flush()
        await self._event(
            "customer.updated", customer.id, "customer", customer.id, {"changed": sorted(changes)}
        )
        return customer

    # members ------------------------------------------------------------------------------------
    async def add_member(
        self, customer_id: str, *, email: str, name: str | None, role: str | None, scope: str | None = None
    ) -> tuple[Membership, User]:
        customer = await self.get(customer_id, scope=scope)
        email = check_email(email)
        role = check_role(role or customer.default_role)
        now = self.clock.now()
        user = await self.repo.user_by_email(email)
        if user is None:
            user = User(id=new_id("usr"), email=email, name=name, created_at=now, updated_at=now)
            self.repo.add(user)
            await self.repo.flush()
        membership = await self.repo.membership(customer.id, user.id)
        if membership is not None and membership.status == "active":
            raise AlreadyMember(f"{email} is already a member of {customer.id}")
        if membership is None:
            membership = Membership(
                id=new_id("mem"),
                tenant_id=customer.id,
                user_id=user.id,
                role=role,
                status="active",
                created_at=now,
            )
            self.repo.add(membership)
        else:
            # Re-adding someone who was removed restores the same membership (its history stays).
            membership.status, membership.role, membership.removed_at = "active", role, None
        await self.repo.flush()
        await self._event(
            "member.added", customer.id, "membership", membership.id, {"user": user.id, "role": role}
        )
        return membership, user

    async def get_member(
        self, customer_id: str, membership_id: str, *, scope: str | None = None
    ) -> tuple[Membership, User]:
        customer = await self.get(customer_id, scope=scope)
        found = await self.repo.membership_by_id(customer.id, membership_id)
        if found is None:
            raise MemberNotFound(f"no member {membership_id!r}")
        return found

    async def list_members(
        self,
        customer_id: str,
        *,
        after: str | None,
        limit: int,
        include_removed: bool,
        scope: str | None = None,
    ) -> Page[tuple[Membership, User]]:
        customer = await self.get(customer_id, scope=scope)
        rows = await self.repo.members(customer.id, after=after, limit=limit, include_removed=include_removed)
        has_more = len(rows) > limit
        items = list(rows[:limit])

        return Page(items=items, next_cursor=encode_cursor(items[-1][0].id) if has_more and items else None)

    async def change_role(
        self, customer_id: str, membership_id: str, role: str, *, scope: str | None = None
    ) -> tuple[Membership, User]:
        membership, user = await self.get_member(customer_id, membership_id, scope=scope)
        if membership.status != "active":
            raise Conflict("a removed member has no role to change", code="member_removed")
        previous = membership.role
        membership.role = check_role(role)
        await self.repo.flush()
        await self._event(
            "member.updated",
            customer_id,
            "membership",
            membership.id,
            {"role": role, "previous_role": previous},
        )
        return membership, user

    async def remove_member(
        self, customer_id: str, membership_id: str, *, scope: str | None = None
    ) -> Membership:
        membership, _ = await self.get_member(customer_id, membership_id, scope=scope)
        if membership.status == "removed":
            return membership  # removing twice is a no-op, not an error
        membership.status, membership.removed_at = "removed", self.clock.now()
        await self.repo.flush()
        await self._event(
            "member.removed", customer_id, "membership", membership.id, {"user": membership.user_id}
        )
        return membership

    async def count_members(self, customer_id: str) -> int:
        return await self.repo.count_active_members(customer_id)

    async def lock_members(self, customer_id: str) -> bool:
        """Hold the tenant's member lock until the transaction ends (seat checks count under it).
        False if there is no such customer."""
        return await self.repo.lock_members(customer_id)

    async def is_active_member(self, customer_id: str, email: str) -> bool:
        user = await self.repo.user_by_email(email)
        membership = await self.repo.membership(customer_id, user.id) if user is not None else None
        return membership is not None and membership.status == "active"
