"""Quota counters beside the decision index: gauges that go up and down, and metered allowances per period.

Two implementations answer the same `QuotaStore` contract (tests/entitlements/test_quota_contract.py runs
one suite against both): `MemoryQuotaStore` for embedded mode and `RedisQuotaStore` for replicas that
share counters.

What must stay true:
- A hard limit is never over-admitted, however many requests race: the check and the update are one
  atomic step (no await in between in memory, one Lua script in Redis). A check-then-INCR from Python
  would let every racer read the same `used` and all pass.
- A request that would cross a hard limit is denied whole; nothing is partially admitted.
- Soft limits always admit and account the units above the limit as overage, which billing charges.
- A metered counter is keyed by its period's start, so a new period starts at 0 by construction: there
  is no reset job to forget, run twice, or race with consumption at the period boundary.

Redis key layout (`<prefix>` defaults to `tg`):

    <prefix>:{<tenant>}:g:<feature>                  string, the gauge's current use; no expiry
    <prefix>:{<tenant>}:m:<feature>:<start epoch s>  hash {used, over} for one billing period;
                                                     EXPIREAT period_end + METERED_RETENTION

The `{<tenant>}` hash tag puts every key of a tenant in one Redis Cluster slot, so a script may touch
several of them (a future multi-feature reservation) and a tenant's counters move between shards together.
Tenant ids may therefore not contain braces: a `}` inside one would end the tag early and let two tenants'
key names collide (`t}:g:x` + feature `f` against tenant `t` + feature `x}:g:f`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

import msgspec

from gateway.kernel.clock import ensure_utc

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

OK = "ok"
QUOTA_EXCEEDED = "quota_exceeded"

# How long a period's counter outlives the period: late usage (clock skew between replicas, a retried
# request from just before the boundary) still lands in the right period, and billing can read the final
# usage and overage after the period closed. WARNING: shortening it below the billing run's delay after
# period end makes invoices read expired (zero) overage.
METERED_RETENTION = timedelta(days=7)


class QuotaResult(msgspec.Struct, frozen=True, gc=False):
    """The outcome of one counter operation, as seen right after it.

    `limit` None means unlimited; `release` also reports None because it is never refused and is not told
    the limit. `remaining` is None exactly when `limit` is. `overage` is, for a gauge, how far `used`
    stands above a soft limit; for a metered allowance, the units admitted beyond the soft limit so far in
    the period (what billing charges). Hard limits never create overage.
    """

    allowed: bool
    used: int
    limit: int | None
    remaining: int | None
    overage: int
    resets_at: datetime | None
    reason: str


class QuotaStore(Protocol):
    """Gauges (`reserve`/`release`/`set_gauge`/`gauge`) count what a tenant holds now; metered allowances
    (`consume`/`usage`/`overage`) count what it used in the period starting at `period_start`.

    `limit=None` is unlimited (always admitted, still counted). Amounts are positive ints and limits are
    >= 0, else ValueError; datetimes must be aware (NaiveDatetime otherwise). `release` never takes a gauge
    below zero; `set_gauge` overwrites it from the source of truth (the rows that hold the seats).
    """

    async def reserve(
        self, tenant: str, feature: str, amount: int, limit: int | None, *, soft: bool = False
    ) -> QuotaResult: ...

    async def release(self, tenant: str, feature: str, amount: int) -> QuotaResult: ...

    async def set_gauge(self, tenant: str, feature: str, used: int) -> None: ...

    async def gauge(self, tenant: str, feature: str) -> int: ...

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
    ) -> QuotaResult: ...

    async def usage(self, tenant: str, feature: str, period_start: datetime) -> int: ...

    async def overage(self, tenant: str, feature: str, period_start: datetime) -> int: ...


def _check_names(tenant: str, feature: str) -> None:
    if not tenant or "{" in tenant or "}" in tenant:
        raise ValueError(f"tenant must be non-empty and contain no braces: {tenant!r}")
    if not feature:
        raise ValueError("feature must be non-empty")


def _check_amount(amount: int) -> None:
    # bool is an int subclass; `reserve(..., True, ...)` is a caller's bug, not one unit.
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a positive int, got {amount!r}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None (unlimited) or an int >= 0, got {limit!r}")


def _check_period(period_start: datetime, period_end: datetime) -> tuple[datetime, datetime]:
    start, end = ensure_utc(period_start), ensure_utc(period_end)
    if end <= start:
        raise ValueError(f"period_end {end.isoformat()} is not after period_start {start.isoformat()}")
    return start, end


def _epoch(at: datetime) -> int:
    # Whole seconds: billing periods start on second boundaries, and both stores must agree on which
    # `period_start` values name the same period.
    return int(ensure_utc(at).timestamp())


def _result(
    *, allowed: bool, used: int, limit: int | None, overage: int, resets_at: datetime | None
) -> QuotaResult:
    return QuotaResult(
        allowed=allowed,
        used=used,
        limit=limit,
        remaining=None if limit is None else max(limit - used, 0),
        overage=overage,
        resets_at=resets_at,
        reason=OK if allowed else QUOTA_EXCEEDED,
    )


def _gauge_overage(used: int, limit: int | None, soft: bool) -> int:
    return max(used - limit, 0) if soft and limit is not None else 0


def _admits(used: int, amount: int, limit: int | None, soft: bool) -> bool:
    return soft or limit is None or used + amount <= limit


@dataclass(slots=True)
class _Period:
    used: int
    over: int
    expires_at: datetime


class MemoryQuotaStore:
    """Counters in a dict, for embedded mode (one process, one event loop).

    Every method does its check and update without awaiting in between, so concurrent tasks on the loop
    cannot interleave inside an operation. Not thread-safe: share it between threads and that guarantee
    is gone.
    """

    def __init__(self) -> None:
        self._gauges: dict[tuple[str, str], int] = {}
        self._periods: dict[tuple[str, str], dict[int, _Period]] = {}

    async def reserve(
        self, tenant: str, feature: str, amount: int, limit: int | None, *, soft: bool = False
    ) -> QuotaResult:
        _check_names(tenant, feature)
        _check_amount(amount)
        _check_limit(limit)
        key = (tenant, feature)
        used = self._gauges.get(key, 0)
        allowed = _admits(used, amount, limit, soft)
        if allowed:
            used += amount
            self._gauges[key] = used
        return _result(
            allowed=allowed, used=used, limit=limit, overage=_gauge_overage(used, limit, soft), resets_at=None
        )

    async def release(self, tenant: str, feature: str, amount: int) -> QuotaResult:
        _check_names(tenant, feature)
        _check_amount(amount)
        key = (tenant, feature)
        used = max(self._gauges.get(key, 0) - amount, 0)
        self._gauges[key] = used
        return _result(allowed=True, used=used, limit=None, overage=0, resets_at=None)

    async def set_gauge(self, tenant: str, feature: str, used: int) -> None:
        _check_names(tenant, feature)
        if isinstance(used, bool) or not isinstance(used, int) or used < 0:
            raise ValueError(f"used must be an int >= 0, got {used!r}")
        self._gauges[(tenant, feature)] = used

    async def gauge(self, tenant: str, feature: str) -> int:
        _check_names(tenant, feature)
        return self._gauges.get((tenant, feature), 0)

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
        _check_names(tenant, feature)
        _check_amount(amount)
        _check_limit(limit)
        start, end = _check_period(period_start, period_end)
        periods = self._periods.setdefault((tenant, feature), {})
        expires_at = end + METERED_RETENTION
        epoch = int(start.timestamp())  # _epoch's whole seconds; `start` is already UTC
        period = periods.get(epoch)
        if period is None:
            # There are no TTLs in a dict; this period's start is a lower bound on "now" taken from the
            # arguments, so anything expired by then is expired for sure. Swept when a period begins (the
            # only time the dict grows), so a long-running embedded process keeps only live periods.
            for old in [e for e, p in periods.items() if p.expires_at <= start]:
                del periods[old]
            period = periods[epoch] = _Period(used=0, over=0, expires_at=expires_at)
        period.expires_at = expires_at
        allowed = _admits(period.used, amount, limit, soft)
        if allowed:
            period.used += amount
            if limit is not None and period.used > limit:
                period.over += min(amount, period.used - limit)
        return _result(allowed=allowed, used=period.used, limit=limit, overage=period.over, resets_at=end)

    async def usage(self, tenant: str, feature: str, period_start: datetime) -> int:
        _check_names(tenant, feature)
        period = self._periods.get((tenant, feature), {}).get(_epoch(period_start))
        return period.used if period else 0

    async def overage(self, tenant: str, feature: str, period_start: datetime) -> int:
        _check_names(tenant, feature)
        period = self._periods.get((tenant, feature), {}).get(_epoch(period_start))
        return period.over if period else 0


# The scripts are the only place the Redis store decides anything, so that a decision and its write are
# one atomic step on the server and one round trip for the caller. An empty limit argument means
# unlimited (`tonumber('')` is nil). Counters stay far below 2^53, where Lua's doubles are exact.

_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[3] ~= '1' and limit and used + amount > limit then
  return {0, used}
end
return {1, redis.call('INCRBY', KEYS[1], amount)}
"""

# GET + SET rather than DECRBY: a DECRBY followed by a clamp would expose a negative value to a reserve
# running between the two, and that reserve would admit more than the limit.
_RELEASE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1])
if used < 0 then used = 0 end
redis.call('SET', KEYS[1], used)
return used
"""

# EXPIREAT takes its instant from the arguments (period end + retention), never from TIME inside the
# script: the expiry is then the same on every replica and in the AOF, and a test clock that runs ahead
# of the wall clock keeps its periods alive. Consequence: consuming into a period whose retention has
# already passed writes a key Redis drops at once; such a period is closed and billed anyway.
_CONSUME = """
local state = redis.call('HMGET', KEYS[1], 'used', 'over')
local used = tonumber(state[1] or '0')
local over = tonumber(state[2] or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[3] ~= '1' and limit and used + amount > limit then
  return {0, used, over}
end
used = redis.call('HINCRBY', KEYS[1], 'used', amount)
if limit and used > limit then
  over = redis.call('HINCRBY', KEYS[1], 'over', math.min(amount, used - limit))
end
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return {1, used, over}
"""


def _limit_arg(limit: int | None) -> str:
    return "" if limit is None else str(limit)


class RedisQuotaStore:
    """Counters in Redis, shared by every replica. Works with or without `decode_responses`."""

    def __init__(self, redis: Redis, prefix: str = "tg") -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            # A brace in the prefix would become the hash tag instead of the tenant.
            raise ValueError(f"prefix must be non-empty and contain no braces: {prefix!r}")
        self._redis = redis
        self._prefix = prefix
        self._reserve: AsyncScript = redis.register_script(_RESERVE)
        self._release: AsyncScript = redis.register_script(_RELEASE)
        self._consume: AsyncScript = redis.register_script(_CONSUME)

    def _gauge_key(self, tenant: str, feature: str) -> str:
        return f"{self._prefix}:{{{tenant}}}:g:{feature}"

    def _period_key(self, tenant: str, feature: str, period_start: datetime) -> str:
        return f"{self._prefix}:{{{tenant}}}:m:{feature}:{_epoch(period_start)}"

    async def reserve(
        self, tenant: str, feature: str, amount: int, limit: int | None, *, soft: bool = False
    ) -> QuotaResult:
        _check_names(tenant, feature)
        _check_amount(amount)
        _check_limit(limit)
        reply: list[Any] = await self._reserve(
            keys=[self._gauge_key(tenant, feature)], args=[amount, _limit_arg(limit), int(soft)]
        )
        allowed, used = bool(reply[0]), int(reply[1])
        return _result(
            allowed=allowed, used=used, limit=limit, overage=_gauge_overage(used, limit, soft), resets_at=None
        )

    async def release(self, tenant: str, feature: str, amount: int) -> QuotaResult:
        _check_names(tenant, feature)
        _check_amount(amount)
        used = int(await self._release(keys=[self._gauge_key(tenant, feature)], args=[amount]))
        return _result(allowed=True, used=used, limit=None, overage=0, resets_at=None)

    async def set_gauge(self, tenant: str, feature: str, used: int) -> None:
        _check_names(tenant, feature)
        if isinstance(used, bool) or not isinstance(used, int) or used < 0:
            raise ValueError(f"used must be an int >= 0, got {used!r}")
        await self._redis.set(self._gauge_key(tenant, feature), used)

    async def gauge(self, tenant: str, feature: str) -> int:
        _check_names(tenant, feature)
        value = await self._redis.get(self._gauge_key(tenant, feature))
        return int(value) if value is not None else 0

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
        _check_names(tenant, feature)
        _check_amount(amount)
        _check_limit(limit)
        start, end = _check_period(period_start, period_end)
        expire_at = int((end + METERED_RETENTION).timestamp())
        reply: list[Any] = await self._consume(
            keys=[self._period_key(tenant, feature, start)],
            args=[amount, _limit_arg(limit), int(soft), expire_at],
        )
        return _result(
            allowed=bool(reply[0]), used=int(reply[1]), limit=limit, overage=int(reply[2]), resets_at=end
        )

    async def usage(self, tenant: str, feature: str, period_start: datetime) -> int:
        _check_names(tenant, feature)
        return await self._hget_int(self._period_key(tenant, feature, period_start), "used")

    async def overage(self, tenant: str, feature: str, period_start: datetime) -> int:
        _check_names(tenant, feature)
        return await self._hget_int(self._period_key(tenant, feature, period_start), "over")

    async def aclose(self) -> None:
        """Close the client this store was given (the app gives it one of its own)."""
        await self._redis.aclose()

    async def _hget_int(self, key: str, field: str) -> int:
        # redis-py types its hash commands for the sync and async clients at once; this client is async.
        value = await cast("Awaitable[bytes | str | None]", self._redis.hget(key, field))
        return int(value) if value is not None else 0
