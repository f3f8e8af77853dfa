"""Plan versions and who is on them (issue #14): count the live subscribers of each version, and move
existing subscribers to a newer version by rule (Stigg's "migrate subscriptions to the latest version").
For an add-on plan, its subscribers are the live subscriptions with the add-on attached, and what moves
is the attached add-on's version.

A subscription keeps the plan version it bought (grandfathering) until a migration moves it. A
migration names the target version and a rule: the versions to move from (default: every older one),
and optionally a currency, a billing interval and a list of customers. Only live subscriptions move
(every status but the terminal `canceled`, `expired`, `incomplete_expired`); a subscription already on
the target is left alone. Moving to an older version is refused (422 `migration_to_older_version`):
what a customer was granted is never taken back by a bulk rule; a downgrade goes through a plan change.

Each subscription moves in `SubscriptionService.migrate_plan_version`, under its lock, re-checked
against the rule there: its `plan_version_id` changes, its `version` is bumped and the outbox gets a
`subscription.plan_version_migrated` event (with the previous and the new version) in the same
transaction, which the decision index (it reloads the tenants events name) and webhooks follow. Prices,
quantities and periods do not change: a plan version carries grants only (a metered feature's included
units are the new version's, so the overage billed at the period's end counts against those).

One call moves at most `MIGRATION_BATCH` subscriptions (one transaction); the answer's `remaining` says
how many still match, and calling again with the same rule moves the next ones. A dry run moves none
and says which would move.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from gateway.catalog import CatalogService
from gateway.catalog.domain import PlanKind
from gateway.catalog.errors import PlanVersionNotFound
from gateway.catalog.models import PlanVersion
from gateway.customers import CustomerService
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.periods import Interval
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.repository import SubscriptionRepository
from gateway.subscriptions.service import SubscriptionService

MIGRATION_BATCH = 1000  # subscriptions one call moves (one transaction)
LISTED = 100  # subscriptions an answer names
MAX_CUSTOMERS = 100  # customers a rule may name


@dataclass(frozen=True, slots=True)
class MigrationRule:
    """Which live subscriptions of the plan move. None: no filter (every older version for
    `from_versions`); an empty list is refused, as it would match nothing."""

    from_versions: Sequence[int] | None = None
    currency: str | None = None
    interval: str | None = None
    customers: Sequence[str] | None = None

    def matches(self, sub: Subscription) -> bool:
        """The filters, on a subscription read under its lock (the versions are checked by the caller)."""
        return (
            (self.currency is None or sub.currency == self.currency)
            and (self.interval is None or sub.interval == self.interval)
            and (self.customers is None or sub.tenant_id in self.customers)
        )


@dataclass(frozen=True, slots=True)
class MatchedSubscription:
    id: str
    customer: str
    from_version: int


@dataclass(frozen=True, slots=True)
class MigrationResult:
    plan: str  # the plan's key
    to_version: int
    from_versions: list[int]
    dry_run: bool
    matched: int  # live subscriptions the rule matched when the call started
    migrated: int  # of them, moved by this call (0 in a dry run)
    remaining: int  # still matching after this call: call again to move them
    # The first LISTED: those that would move (dry run) or that moved.
    subscriptions: list[MatchedSubscription] = field(default_factory=list)

    @property
    def has_more(self) -> bool:
        return (self.matched if self.dry_run else self.migrated) > len(self.subscriptions)


class SubscriberCounts:
    """The catalog's `VersionSubscribers` port: live subscriptions per plan version."""

    def __init__(self, repository: SubscriptionRepository) -> None:
        self.repo = repository

    async def live_by_version(self, plan_id: str) -> dict[str, int]:
        return await self.repo.live_by_version(plan_id)


class PlanVersionMigrations:
    def __init__(self, subscriptions: SubscriptionService) -> None:
        self.subscriptions = subscriptions
        self.repo = subscriptions.repo
        self.catalog: CatalogService = subscriptions.catalog
        self.customers: CustomerService = subscriptions.customers

    async def migrate(
        self, plan: str, version: int, rule: MigrationRule, *, dry_run: bool
    ) -> MigrationResult:
        """Move (or, in a dry run, list) the live subscriptions of `plan` the rule matches to `version`.
        Everything is checked before anything moves: bad input changes nothing."""
        plan_row = await self.catalog.get_plan(plan)
        addon = plan_row.kind == PlanKind.ADDON
        versions = {t.version.version: t.version for t in await self.catalog.list_versions(plan_row.id)}
        target = versions.get(version)
        if target is None:
            raise PlanVersionNotFound(f"plan {plan_row.key!r} has no version {version}")
        sources = self._sources(rule, versions, version)
        currency, interval, customers = await self._filters(rule)
        checked = MigrationRule(sorted(sources), currency, interval, customers)
        source_ids = {versions[n].id: n for n in sources}
        matched = await self._count(plan_row.id, list(source_ids), addon, checked)
        rows = await self.repo.on_versions(
            plan_row.id,
            list(source_ids),
            addon=addon,
            currency=currency,
            interval=interval,
            customers=customers,
            limit=LISTED if dry_run else MIGRATION_BATCH,
        )
        found = [MatchedSubscription(sub_id, customer, source_ids[v]) for sub_id, customer, v in rows]
        if dry_run:
            return MigrationResult(
                plan_row.key, version, sorted(sources), True, matched, 0, matched, found[:LISTED]
            )
        moved = []
        for candidate in found:
            sub = await self.subscriptions.migrate_plan_version(
                candidate.id, to=target, from_versions=source_ids, matches=checked.matches
            )
            if sub is not None:
                moved.append(candidate)
        remaining = await self._count(plan_row.id, list(source_ids), addon, checked)
        return MigrationResult(
            plan_row.key, version, sorted(sources), False, matched, len(moved), remaining, moved[:LISTED]
        )

    async def _count(self, plan_id: str, version_ids: list[str], addon: bool, rule: MigrationRule) -> int:
        return await self.repo.count_on_versions(
            plan_id,
            version_ids,
            addon=addon,
            currency=rule.currency,
            interval=rule.interval,
            customers=rule.customers,
        )

    @staticmethod
    def _sources(rule: MigrationRule, versions: dict[int, PlanVersion], target: int) -> set[int]:
        if rule.from_versions is None:
            return {n for n in versions if n < target}
        asked = set(rule.from_versions)
        if not asked:
            raise ValidationFailed("from_versions must name at least one version", field="from_versions")
        unknown = sorted(n for n in asked if n not in versions)
        if unknown:
            raise ValidationFailed(
                f"the plan has no version {', '.join(map(str, unknown))}",
                code="plan_version_not_found",
                field="from_versions",
            )
        newer = sorted(n for n in asked if n > target)
        if newer:
            raise ValidationFailed(
                f"version {target} is older than version {', '.join(map(str, newer))}: subscribers are "
                "never moved to an older version",
                code="migration_to_older_version",
                field="from_versions",
            )
        return asked - {target}  # already there: nothing to do

    async def _filters(self, rule: MigrationRule) -> tuple[str | None, str | None, list[str] | None]:
        currency = rule.currency
        if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValidationFailed("currency is a three-letter ISO code such as USD", field="currency")
        interval = rule.interval
        if interval is not None:
            try:
                interval = Interval(interval).value
            except ValueError:
                choices = ", ".join(i.value for i in Interval)
                raise ValidationFailed(f"interval is one of {choices}", field="interval") from None
        if rule.customers is None:
            return currency, interval, None
        customers = sorted(set(rule.customers))
        if not customers:
            raise ValidationFailed("customers must name at least one customer", field="customers")
        if len(customers) > MAX_CUSTOMERS:
            raise ValidationFailed(f"at most {MAX_CUSTOMERS} customers", field="customers")
        missing = []
        for customer in customers:
            try:
                await self.customers.get(customer)
            except NotFound:
                missing.append(customer)
        if missing:
            raise ValidationFailed(
                f"no customer {', '.join(missing)}", code="customer_not_found", field="customers"
            )
        return currency, interval, customers
