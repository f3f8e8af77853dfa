"""A circuit breaker around the quota store, so a Redis outage costs each check nothing, not a timeout.

The quota client already gives up after `redis_quota_timeout_seconds`. Without a breaker every check
would still wait that long while Redis is down or paused; with it, after `failures` consecutive outages
the breaker *opens*: calls fail at once with `QuotaStoreUnavailable` (the engine answers from the
failure policy: `quota_unavailable`, or `allowed_fail_open` for `fail_open_features`) for
`cooldown_seconds`. Then it is *half-open*: one call goes through as a probe; success closes the
breaker, another outage opens it for a new cool-down. Calls arriving while the probe is out fail fast.

Only outages count (connection errors, timeouts, Redis errors); a caller's ValueError is a bug and
passes through without touching the breaker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from gateway.entitlements.quotas import QuotaResult, QuotaStore

log = logging.getLogger("tiergate.entitlements.breaker")
T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class QuotaStoreUnavailable(ConnectionError):
    """The breaker is open: the quota store was not called."""


def is_outage(exc: BaseException) -> bool:
    """An error that says the store is unreachable or too slow, as opposed to a bug in the call."""
    if isinstance(exc, ConnectionError | OSError | TimeoutError):
        return True
    return type(exc).__module__.startswith("redis.") and type(exc).__name__ != "ResponseError"


class CircuitBreaker:
    def __init__(
        self, failures: int, cooldown_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or cooldown_seconds <= 0:
            raise ValueError("a breaker needs failures >= 1 and a positive cool-down")
        self.failures = failures
        self.cooldown_seconds = cooldown_seconds
        self._monotonic = monotonic
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        if self._monotonic() - self._opened_at < self.cooldown_seconds:
            return OPEN
        return HALF_OPEN

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        state = self.state
        if state == OPEN or (state == HALF_OPEN and self._probing):
            raise QuotaStoreUnavailable(f"quota store circuit {state}; not calling it")
        probe = state == HALF_OPEN
        self._probing = probe
        try:
            result = await operation()
        except BaseException as exc:
            if is_outage(exc):
                self._failed(probe)
            raise
        finally:
            if probe:
                self._probing = False
        if self._opened_at is not None or self._consecutive:
            if self._opened_at is not None:
                log.warning("quota store answers again: circuit closed")
            self._consecutive, self._opened_at = 0, None
        return result

    def _failed(self, probe: bool) -> None:
        self._consecutive += 1
        if probe or self._consecutive >= self.failures:
            if self._opened_at is None or probe:
                log.warning(
                    "quota store failed %d time(s): circuit open for %.1f s",
                    self._consecutive,
                    self.cooldown_seconds,
                )
            self._opened_at = self._monotonic()


class GuardedQuotaStore:
    """A `QuotaStore` that goes through a `CircuitBreaker`; same contract, plus `QuotaStoreUnavailable`."""

    def __init__(self, inner: QuotaStore, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    async def reserve(
        self, tenant: str, feature: str, amount: int, limit: int | None, *, soft: bool = False
    ) -> QuotaResult:
        return await self.breaker.call(lambda: self.inner.reserve(tenant, feature, amount, limit, soft=soft))

    async def release(self, tenant: str, feature: str, amount: int) -> QuotaResult:
        return await self.breaker.call(lambda: self.inner.release(tenant, feature, amount))

    async def set_gauge(self, tenant: str, feature: str, used: int) -> None:
        await self.breaker.call(lambda: self.inner.set_gauge(tenant, feature, used))

    async def gauge(self, tenant: str, feature: str) -> int:
        return await self.breaker.call(lambda: self.inner.gauge(tenant, feature))

    async def consume(
        self,
        tenant: str,
        feature: str,
        amount: int,
        limit: int | None,
        *,
        period_start: datetime,
        period_end: datetime,
        soft: bool = False,
    ) -> QuotaResult:
        return await self.breaker.call(
            lambda: self.inner.consume(
                tenant, feature, amount, limit, period_start=period_start, period_end=period_end, soft=soft
            )
        )

    async def usage(self, tenant: str, feature: str, period_start: datetime) -> int:
        return await self.breaker.call(lambda: self.inner.usage(tenant, feature, period_start))

    async def overage(self, tenant: str, feature: str, period_start: datetime) -> int:
        return await self.breaker.call(lambda: self.inner.overage(tenant, feature, period_start))
