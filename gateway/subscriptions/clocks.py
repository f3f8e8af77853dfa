"""Test clocks: let a customer's time run ahead of the wall clock, so a year of renewals runs in seconds.

A clock only moves forward. Advancing it runs every time-driven step of the subscriptions of its
customers, in time order, each stamped with the clock time at which it happened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.customers import CustomerService
from gateway.customers.models import Customer
from gateway.db.outbox import record_event
from gateway.kernel.clock import Clock, ensure_utc, format_timestamp
from gateway.kernel.errors import Conflict, NotFound, ValidationFailed
from gateway.kernel.events import DomainEvent
from gateway.kernel.ids import new_id
from gateway.kernel.pagination import Page
from gateway.kernel.periods import add_months
from gateway.subscriptions.hooks import ClockListener
from gateway.subscriptions.models import TestClock
from gateway.subscriptions.repository import SubscriptionRepository
from gateway.subscriptions.service import SubscriptionService

# Called at the start of every advance, before anything moves: `hook(session, clock_id, to)`. Domains above
# subscriptions register one through the composition root (payments: the sandbox provider settles what
# falls due on that clock, so asynchronous settlements and account-updater events follow the clock) without
# subscriptions importing them. Before the advance's writes, so a provider's webhooks arriving meanwhile
# never wait on this transaction (SQLite has one writer).
ClockAdvanceHook = Callable[[AsyncSession, str, datetime], Awaitable[None]]


class TestClockNotFound(NotFound):
    __test__ = False
    code = "test_clock_not_found"


# One advance moves a clock at most this many calendar months. Stripe bounds an advance to two billing
# intervals; Tiergate bounds the span, which bounds the work of one request (at most ~24 renewals per
# monthly subscription, 2 per yearly one) without depending on what the clock's customers hold. A
# 200-year advance used to run for 24 s before failing; going further takes several advances.
DEFAULT_MAX_ADVANCE_MONTHS = 24


class TestClockAdvanceTooFar(ValidationFailed):
    __test__ = False
    code = "test_clock_advance_too_far"


class TestClockService:
    __test__ = False

    def __init__(
        self,
        repository: SubscriptionRepository,
        subscriptions: SubscriptionService,
        customers: CustomerService,
        clock: Clock,
        *,
        max_advance_months: int = DEFAULT_MAX_ADVANCE_MONTHS,
        advance_hooks: Sequence[ClockAdvanceHook] = (),
    ) -> None:
        self.repo = repository
        self.advance_hooks = tuple(advance_hooks)
        self.max_advance_months = max_advance_months
        self.subscriptions = subscriptions
        self.customers = customers
        self.clock = clock

    async def create(self, *, frozen_time: datetime | None, name: str | None) -> TestClock:
        start = ensure_utc(frozen_time) if frozen_time else self.clock.now()
        test_clock = TestClock(
            id=new_id("clock"), name=name, frozen_time=start, status="ready", created_at=self.clock.now()
        )
        self.repo.add(test_clock)
        await self.repo.flush()
        await self._event(test_clock, "test_clock.created")
        return test_clock

    async def get(self, clock_id: str) -> TestClock:
        test_clock = await self.repo.get_clock(clock_id)
        if test_clock is None:
            raise TestClockNotFound(f"no test clock {clock_id!r}")
        return test_clock

    async def list(self, *, after: str | None, limit: int) -> Page[TestClock]:
        return Page.from_overfetch(await self.repo.list_clocks(after=after, limit=limit), limit)

    async def attach(self, clock_id: str, customer_id: str, *, scope: str | None = None) -> Customer:
        test_clock = await self.get(clock_id)
        customer = await self.customers.get(customer_id, scope=scope)
        if customer.test_clock_id == test_clock.id:
            return customer
        if await self.subscriptions.live_for_tenant(customer.id) is not None:
            raise Conflict(
                "attach the clock before the customer subscribes: moving live subscriptions in time would "
                "skip or repeat periods",
                code="customer_has_subscription",
            )
        customer.test_clock_id = test_clock.id
        await self.repo.flush()
        return customer

    async def advance(self, clock_id: str, frozen_time: datetime) -> tuple[TestClock, int]:
        test_clock = await self.repo.get_clock(clock_id, for_update=True)
        if test_clock is None:
            raise TestClockNotFound(f"no test clock {clock_id!r}")
        target = ensure_utc(frozen_time)
        if target <= test_clock.frozen_time:
            raise ValidationFailed(
                f"a test clock only moves forward: it is at {format_timestamp(test_clock.frozen_time)}",
                field="frozen_time",
            )
        furthest = add_months(test_clock.frozen_time, self.max_advance_months)
        if target > furthest:
            raise TestClockAdvanceTooFar(
                f"one advance moves a test clock at most {self.max_advance_months} months: from "
                f"{format_timestamp(test_clock.frozen_time)} to {format_timestamp(furthest)} at the "
                "latest; advance in several steps",
                field="frozen_time",
                max_frozen_time=format_timestamp(furthest),
            )
        for hook in self.advance_hooks:
            await hook(self.repo.session, test_clock.id, target)
        # Walk step by step so each step sees the clock at its own time (a change made by a handler at
        # the trial end must see the trial-end time, not the target).
        steps = await self.subscriptions.advance_due(target, test_clock_id=test_clock.id)
        for listener in self.subscriptions.listeners:
            if isinstance(listener, ClockListener):
                await listener.on_clock_advanced(test_clock.id, target)
        test_clock.frozen_time = target
        await self.repo.flush()
        await self._event(test_clock, "test_clock.advanced", steps=steps)
        return test_clock, steps

    async def delete(self, clock_id: str) -> None:
        test_clock = await self.get(clock_id)
        page = await self.customers.list(after=None, limit=1, scope=None, test_clock_id=test_clock.id)
        if page.items:
            raise Conflict("detach or delete the clock's customers first", code="test_clock_in_use")
        await self.repo.delete_clock(test_clock)
        await self.repo.flush()

    async def _event(self, test_clock: TestClock, type_: str, **data: object) -> None:
        await record_event(
            self.repo.session,
            DomainEvent(
                type_,
                "test_clock",
                test_clock.id,
                test_clock.frozen_time,
                data={"frozen_time": format_timestamp(test_clock.frozen_time), **data},
            ),
        )
