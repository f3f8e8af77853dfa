"""Subscription, test-clock and event endpoints under /v1."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader, State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.catalog.http import provide_catalog
from gateway.catalog.service import CatalogService
from gateway.customers.http import provide_customers
from gateway.customers.service import CustomerService
from gateway.db.outbox import list_events
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import ValidationFailed
from gateway.kernel.pagination import encode_cursor
from gateway.subscriptions import schemas as s
from gateway.subscriptions.clocks import DEFAULT_MAX_ADVANCE_MONTHS, TestClockService
from gateway.subscriptions.hooks import SubscriptionListener
from gateway.subscriptions.migrations import MigrationRule, PlanVersionMigrations, SubscriberCounts
from gateway.subscriptions.models import Subscription
from gateway.subscriptions.ports import PaymentMethodLookup
from gateway.subscriptions.repository import SubscriptionRepository
from gateway.subscriptions.service import AddonInput, IfMatch, SubscriptionService
from gateway.web.deps import ListParams
from gateway.web.problems import ERROR_RESPONSES, problem_spec
from gateway.web.timestamps import parse_timestamp

READ = {"scope": "subscriptions:read"}
WRITE = {"scope": "subscriptions:write"}


def provide_subscriptions(
    session: NamedDependency[AsyncSession],
    catalog: NamedDependency[CatalogService],
    customers: NamedDependency[CustomerService],
    clock: NamedDependency[Clock],
    subscription_listeners: NamedDependency[Sequence[SubscriptionListener]],
    payment_method_lookup: NamedDependency[PaymentMethodLookup],
) -> SubscriptionService:
    return SubscriptionService(
        SubscriptionRepository(session),
        catalog,
        customers,
        clock,
        subscription_listeners,
        payment_methods=payment_method_lookup,
    )


def provide_test_clocks(
    state: State,
    session: NamedDependency[AsyncSession],
    subscriptions: NamedDependency[SubscriptionService],
    customers: NamedDependency[CustomerService],
    clock: NamedDependency[Clock],
) -> TestClockService:
    max_months = getattr(state.get("settings"), "test_clock_max_advance_months", DEFAULT_MAX_ADVANCE_MONTHS)
    return TestClockService(
        SubscriptionRepository(session),
        subscriptions,
        customers,
        clock,
        max_advance_months=max_months,
        advance_hooks=state.get("clock_advance_hooks", ()),
    )


def provide_if_match(
    if_match_header: Annotated[
        str | None,
        HeaderParameter(
            name="If-Match",
            max_length=200,
            description=(
                "Apply the change only if the subscription is still at this version: the `ETag` of the "
                'subscription as last read (e.g. `"3"`), or `*`. Otherwise 412 `precondition_failed`.'
            ),
        ),
    ] = None,
) -> IfMatch:
    return parse_if_match(if_match_header)


def parse_if_match(header: str | None) -> IfMatch:
    """The versions an If-Match header names; None when there is no condition (absent, or `*`: the
    subscription exists). Weak tags (`W/"3"`) never match a write (RFC 9110 strong comparison)."""
    if header is None or header.strip() == "*":
        return None
    versions: set[int] = set()
    for tag in (t.strip() for t in header.split(",")):
        if tag.startswith("W/"):
            continue
        value = tag[1:-1] if len(tag) >= 2 and tag[0] == tag[-1] == '"' else ""
        if not value.isdigit() or len(value) > 18:
            raise ValidationFailed(
                f"If-Match must be a list of ETags such as '\"3\"', not {header!r}", field="If-Match"
            )
        versions.add(int(value))
    return frozenset(versions)


def etag(version: int) -> str:
    return f'"{version}"'


async def add_etag(response: Response[object]) -> Response[object]:
    """Every single-subscription response carries its version as a strong ETag, for If-Match."""
    if isinstance(response.content, s.Subscription):
        response.headers["ETag"] = etag(response.content.version)
    return response


ETAG_HEADER = ResponseHeader(
    name="ETag",
    description="The subscription's version, for `If-Match` on the next change",
    documentation_only=True,
)
# Writes that honour If-Match document its 412 beside the usual errors.
WRITE_RESPONSES = {
    **ERROR_RESPONSES,
    412: problem_spec("`If-Match` names a version that is no longer current (`precondition_failed`)"),
}

DEPENDENCIES = {
    "catalog": Provide(provide_catalog, sync_to_thread=False),
    "customers": Provide(provide_customers, sync_to_thread=False),
    "subscriptions": Provide(provide_subscriptions, sync_to_thread=False),
    "test_clocks": Provide(provide_test_clocks, sync_to_thread=False),
}


async def _out(subscriptions: NamedDependency[SubscriptionService], row: Subscription) -> s.Subscription:
    return s.Subscription.of(row, list(await subscriptions.addons(row)))


class SubscriptionController(Controller):
    path = "/subscriptions"
    tags = ["subscriptions"]
    dependencies = {**DEPENDENCIES, "if_match": Provide(provide_if_match, sync_to_thread=False)}
    after_request = staticmethod(add_etag)  # a plain hook, not a method of the controller
    response_headers = [ETAG_HEADER]

    @post(
        "/", opt=WRITE, responses=ERROR_RESPONSES, summary="Create a subscription (optionally with a trial)"
    )
    async def create(
        self,
        data: JSONBody[s.SubscriptionCreate],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
    ) -> s.Subscription:
        row = await subscriptions.create(
            customer_id=data.customer,
            price=data.price,
            quantity=data.quantity,
            currency=data.currency,
            trial_days=data.trial_days,
            trial_end_behavior=data.trial_end_behavior,
            alignment=data.alignment,
            addons=[AddonInput(a.price, a.quantity) for a in data.addons],
            metadata=data.metadata,
            coupon=data.coupon,
            promotion_code=data.promotion_code,
            allow_repeat_trial=data.allow_repeat_trial,
            collection_method=data.collection_method,
            days_until_due=data.days_until_due,
            scope=principal.tenant_id,
        )
        return await _out(subscriptions, row)

    @patch(
        "/{subscription_id:str}",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Update how the subscription's invoices are collected, and its trial-end behaviour",
    )
    async def update(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.SubscriptionUpdate],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.update(
            subscription_id,
            collection_method=data.collection_method,
            days_until_due=data.days_until_due,
            trial_end_behavior=data.trial_end_behavior,
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List subscriptions")
    async def list_(
        self,
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
        status: Annotated[str | None, QueryParameter(name="status", max_length=20)] = None,
        plan: Annotated[str | None, QueryParameter(name="plan", max_length=100)] = None,
    ) -> s.SubscriptionList:
        result = await subscriptions.list(
            after=page.after,
            limit=page.limit,
            scope=principal.tenant_id,
            customer_id=customer,
            status=status,
            plan=plan,
        )
        data = [await _out(subscriptions, r) for r in result.items]
        return s.SubscriptionList(data, result.next_cursor is not None, result.next_cursor)

    @get("/{subscription_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve a subscription")
    async def retrieve(
        self,
        subscription_id: FromPath[str],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
    ) -> s.Subscription:
        return await _out(subscriptions, await subscriptions.get(subscription_id, scope=principal.tenant_id))

    @post(
        "/{subscription_id:str}/plan_change",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Change plan: upgrades now, downgrades at the period end, unless `timing` says otherwise",
    )
    async def change_plan(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.PlanChange],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.change_plan(
            subscription_id,
            price=data.price,
            quantity=data.quantity,
            timing=data.timing,
            proration_behavior=data.proration_behavior,
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, row)

    @delete(
        "/{subscription_id:str}/scheduled_change",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        status_code=200,
        summary="Drop a plan change scheduled for the period end",
    )
    async def drop_scheduled_change(
        self,
        subscription_id: FromPath[str],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.cancel_scheduled_change(
            subscription_id, scope=principal.tenant_id, if_match=if_match
        )
        return await _out(subscriptions, row)

    @post(
        "/{subscription_id:str}/quantity",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Change seat quantity: set it (`quantity`) or add/remove seats (`quantity_delta`)",
    )
    async def quantity(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.QuantityChange],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.set_quantity(
            subscription_id,
            data.quantity,
            quantity_delta=data.quantity_delta,
            proration_behavior=data.proration_behavior,
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, row)

    @post("/{subscription_id:str}/addons", opt=WRITE, responses=WRITE_RESPONSES, summary="Attach an add-on")
    async def add_addon(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.AddonIn],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        await subscriptions.add_addon(
            subscription_id,
            AddonInput(data.price, data.quantity),
            proration_behavior=data.proration_behavior,
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, await subscriptions.get(subscription_id, scope=principal.tenant_id))

    @delete(
        "/{subscription_id:str}/addons/{addon_id:str}",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        status_code=200,
        summary="Remove an add-on",
    )
    async def remove_addon(
        self,
        subscription_id: FromPath[str],
        addon_id: FromPath[str],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
        proration_behavior: Annotated[
            str | None, QueryParameter(name="proration_behavior", max_length=20)
        ] = None,
    ) -> s.Subscription:
        await subscriptions.remove_addon(
            subscription_id,
            addon_id,
            proration_behavior=proration_behavior,
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, await subscriptions.get(subscription_id, scope=principal.tenant_id))

    @post(
        "/{subscription_id:str}/pause",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Pause (optionally until a time)",
    )
    async def pause(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.PauseRequest],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.pause(
            subscription_id,
            resumes_at=parse_timestamp(data.resumes_at, "resumes_at"),
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, row)

    @post(
        "/{subscription_id:str}/extend_trial",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Move a trial's end later (the trial period and the billing anchor move with it)",
    )
    async def extend_trial(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.ExtendTrialRequest],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        trial_end = parse_timestamp(data.trial_end, "trial_end")
        assert trial_end is not None  # the field is required
        row = await subscriptions.extend_trial(
            subscription_id, trial_end=trial_end, scope=principal.tenant_id, if_match=if_match
        )
        return await _out(subscriptions, row)

    @post(
        "/{subscription_id:str}/resume",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Resume a paused subscription",
    )
    async def resume(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.ResumeRequest],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.resume(
            subscription_id, anchor=data.billing_cycle_anchor, scope=principal.tenant_id, if_match=if_match
        )
        return await _out(subscriptions, row)

    @post(
        "/{subscription_id:str}/cancel",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Cancel now, or at the period end (default)",
    )
    async def cancel(
        self,
        subscription_id: FromPath[str],
        data: JSONBody[s.CancelRequest],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.cancel(
            subscription_id,
            at_period_end=data.at_period_end,
            reason=data.reason,
            feedback=data.feedback,
            comment=data.comment,
            prorate=data.prorate,
            invoice_now=data.invoice_now,
            scope=principal.tenant_id,
            if_match=if_match,
        )
        return await _out(subscriptions, row)

    @post(
        "/{subscription_id:str}/undo_cancel",
        opt=WRITE,
        responses=WRITE_RESPONSES,
        summary="Undo a cancellation scheduled for the period end",
    )
    async def undo_cancel(
        self,
        subscription_id: FromPath[str],
        subscriptions: NamedDependency[SubscriptionService],
        principal: NamedDependency[Principal],
        if_match: NamedDependency[IfMatch],
    ) -> s.Subscription:
        row = await subscriptions.undo_cancel(subscription_id, scope=principal.tenant_id, if_match=if_match)
        return await _out(subscriptions, row)


def provide_migrations(subscriptions: NamedDependency[SubscriptionService]) -> PlanVersionMigrations:
    return PlanVersionMigrations(subscriptions)


def provide_version_subscribers(session: NamedDependency[AsyncSession]) -> SubscriberCounts:
    """The catalog's `VersionSubscribers` port (the composition root wires it for `GET …/versions`)."""
    return SubscriberCounts(SubscriptionRepository(session))


class PlanVersionMigrationController(Controller):
    """Moving a plan's existing subscribers to another of its versions (the catalog's own plan routes
    are in gateway/catalog/http.py; this one changes subscriptions, which sit above the catalog)."""

    path = "/plans"
    tags = ["catalog"]
    dependencies = {**DEPENDENCIES, "migrations": Provide(provide_migrations, sync_to_thread=False)}

    @post(
        "/{plan:str}/versions/{version:int}/migrations",
        opt={"scope": "catalog:write"},
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Move live subscribers of older versions to this version, by rule (or preview: dry_run)",
        description=(
            "Live subscriptions of the plan on `from_versions` (default: every older version) that pass "
            "the filters get this version's grants; their price and billing do not change. Each moved "
            "subscription's `version` is bumped and a `subscription.plan_version_migrated` event is "
            "recorded. A call moves at most 1,000 (`remaining` says how many still match: call again). "
            "Moving to an older version is a 422 `migration_to_older_version`."
        ),
    )
    async def migrate(
        self,
        plan: FromPath[str],
        version: FromPath[int],
        data: JSONBody[s.VersionMigrationRequest],
        migrations: NamedDependency[PlanVersionMigrations],
    ) -> s.VersionMigration:
        rule = MigrationRule(data.from_versions, data.currency, data.interval, data.customers)
        result = await migrations.migrate(plan[:100], version, rule, dry_run=data.dry_run)
        return s.VersionMigration.of(result)


CLOCK_WRITE = {"scope": "test_clocks:write"}
CLOCK_READ = {"scope": "test_clocks:read"}


class TestClockController(Controller):
    """Test clocks are platform objects: a tenant-scoped key may not move time for anyone."""

    __test__ = False
    path = "/test_clocks"
    tags = ["test clocks"]
    dependencies = DEPENDENCIES

    @post("/", opt=CLOCK_WRITE, responses=ERROR_RESPONSES, summary="Create a test clock")
    async def create(
        self, data: JSONBody[s.TestClockCreate], test_clocks: NamedDependency[TestClockService]
    ) -> s.TestClock:
        frozen_time = parse_timestamp(data.frozen_time, "frozen_time")
        return s.TestClock.of(await test_clocks.create(frozen_time=frozen_time, name=data.name))

    @get("/", opt=CLOCK_READ, responses=ERROR_RESPONSES, summary="List test clocks")
    async def list_(
        self, test_clocks: NamedDependency[TestClockService], page: NamedDependency[ListParams]
    ) -> s.TestClockList:
        result = await test_clocks.list(after=page.after, limit=page.limit)
        return s.TestClockList(
            [s.TestClock.of(r) for r in result.items], result.next_cursor is not None, result.next_cursor
        )

    @get("/{clock_id:str}", opt=CLOCK_READ, responses=ERROR_RESPONSES, summary="Retrieve a test clock")
    async def retrieve(
        self, clock_id: FromPath[str], test_clocks: NamedDependency[TestClockService]
    ) -> s.TestClock:
        return s.TestClock.of(await test_clocks.get(clock_id))

    @post(
        "/{clock_id:str}/advance",
        opt=CLOCK_WRITE,
        responses=ERROR_RESPONSES,
        summary="Advance the clock; everything due for its customers happens, in time order",
        description=(
            "One advance moves the clock at most `test_clock_max_advance_months` (24 by default) calendar "
            "months; a later `frozen_time` is a 422 `test_clock_advance_too_far` whose `max_frozen_time` "
            "is the latest time allowed, and nothing moves. Go further in several advances."
        ),
    )
    async def advance(
        self,
        clock_id: FromPath[str],
        data: JSONBody[s.TestClockAdvance],
        test_clocks: NamedDependency[TestClockService],
    ) -> s.TestClock:
        row, steps = await test_clocks.advance(clock_id, parse_timestamp(data.frozen_time, "frozen_time"))  # type: ignore[arg-type]
        return s.TestClock.of(row, steps)

    @post(
        "/{clock_id:str}/customers",
        opt=CLOCK_WRITE,
        responses=ERROR_RESPONSES,
        summary="Attach a customer (before it subscribes) to the clock",
    )
    async def attach(
        self,
        clock_id: FromPath[str],
        data: JSONBody[s.TestClockAttach],
        test_clocks: NamedDependency[TestClockService],
        principal: NamedDependency[Principal],
    ) -> s.TestClock:
        await test_clocks.attach(clock_id, data.customer, scope=principal.tenant_id)
        return s.TestClock.of(await test_clocks.get(clock_id))

    @delete(
        "/{clock_id:str}", opt=CLOCK_WRITE, responses=ERROR_RESPONSES, summary="Delete an unused test clock"
    )
    async def remove(self, clock_id: FromPath[str], test_clocks: NamedDependency[TestClockService]) -> None:
        await test_clocks.delete(clock_id)


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @get(
        "/",
        opt={"scope": "events:read"},
        responses=ERROR_RESPONSES,
        summary="List domain events (the outbox), oldest first",
    )
    async def list_(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        page: NamedDependency[ListParams],
        aggregate: Annotated[str | None, QueryParameter(name="aggregate", max_length=40)] = None,
        type_prefix: Annotated[str | None, QueryParameter(name="type", max_length=80)] = None,
    ) -> s.EventList:
        try:
            after_seq = int(page.after) if page.after else 0
        except ValueError:
            raise ValidationFailed("malformed pagination cursor", field="starting_after") from None
        rows = await list_events(
            session,
            tenant_id=principal.tenant_id,
            aggregate_id=aggregate,
            type_prefix=type_prefix,
            after_seq=after_seq,
            limit=page.limit + 1,
        )
        has_more = len(rows) > page.limit
        rows = rows[: page.limit]
        cursor = encode_cursor(str(rows[-1].seq)) if has_more and rows else None
        return s.EventList([s.Event.of(r) for r in rows], has_more, cursor)


CONTROLLERS = [SubscriptionController, TestClockController, PlanVersionMigrationController]
