"""Liveness (`/health/live`) and readiness (`/health/ready`, aliased by `/health`); see README.md."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from gateway.config import Settings
from gateway.db.session import Database
from gateway.entitlements.engine import Engine

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


class Component(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One dependency's state: `ok`, `failed` (with `detail`), or `skipped` (not used by this process)."""

    status: str
    detail: str | None = None
    latency_ms: float | None = None
    version: int | None = None
    staleness_seconds: float | None = None
    max_staleness_seconds: float | None = None
    age_seconds: float | None = None
    max_age_seconds: float | None = None
    breaker: str | None = None


class AntiEntropy(msgspec.Struct, kw_only=True):
    """The replica's periodic index-vs-database comparison: checks run, tenants found to differ (and
    reloaded). With a sound change stream `repaired` stays 0."""

    runs: int
    repaired: int


class Readiness(msgspec.Struct, kw_only=True):
    status: str  # "ready" or "not_ready"
    failed: list[str]  # the components that are not ok, in check order
    index_version: int
    stale: bool
    components: dict[str, Component]
    anti_entropy: AntiEntropy


class Liveness(msgspec.Struct, kw_only=True):
    status: str = "ok"


async def _timed(probe: Any, limit_seconds: float) -> Component:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(limit_seconds):
            await probe()
    except Exception as exc:  # any failure, timeouts included, is this component's verdict
        return Component(status=FAILED, detail=f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__)
    return Component(status=OK, latency_ms=round((time.perf_counter() - started) * 1000, 3))


async def _database(db: Database, limit_seconds: float) -> Component:
    async def probe() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return await _timed(probe, limit_seconds)


async def _redis(state: State, settings: Settings, limit_seconds: float) -> Component:
    notifier = state.get("notifier")
    client = getattr(notifier, "redis", None)
    if not settings.redis_url or client is None:
        return Component(status=SKIPPED, detail="redis_url is not set: in-process adapters")
    component = await _timed(client.ping, limit_seconds)
    breaker = getattr(getattr(state.engine, "quotas", None), "breaker", None)
    if breaker is not None:
        component.breaker = breaker.state
    return component


def _index(engine: Engine) -> Component:
    limit = engine.settings.max_staleness_seconds
    if not engine.ready:
        return Component(status=FAILED, detail="the decision index has not loaded yet")
    staleness = round(engine.staleness_seconds, 3)
    component = Component(
        status=OK, version=engine.version, staleness_seconds=staleness, max_staleness_seconds=limit
    )
    if engine.stale:
        component.status = FAILED
        component.detail = f"no successful catch-up for {staleness:.1f} s (bound {limit:g} s)"
    return component


def _relay(state: State, settings: Settings) -> Component:
    relay = state.get("relay")
    if not settings.relay_enabled or relay is None:
        return Component(status=SKIPPED, detail="relay_enabled is false: a worker runs the relay")
    since = relay.last_ok_at if relay.last_ok_at is not None else relay.started_at
    limit = settings.health_relay_max_age_seconds
    if since is None:
        return Component(status=FAILED, detail="the relay has not started", max_age_seconds=limit)
    age = round(time.monotonic() - since, 3)
    component = Component(status=OK, age_seconds=age, max_age_seconds=limit)
    if age > limit:
        component.status = FAILED
        component.detail = f"no successful relay pass for {age:.1f} s (bound {limit:g} s)"
    return component


async def readiness(state: State) -> Readiness:
    settings: Settings = state.settings
    engine: Engine = state.engine
    timeout = settings.health_check_timeout_seconds
    database, redis = await asyncio.gather(_database(state.db, timeout), _redis(state, settings, timeout))
    components = {
        "database": database,
        "redis": redis,
        "index": _index(engine),
        "relay": _relay(state, settings),
    }
    failed = [name for name, component in components.items() if component.status == FAILED]
    return Readiness(
        status="not_ready" if failed else "ready",
        failed=failed,
        index_version=engine.version,
        stale=engine.stale if engine.ready else True,
        components=components,
        anti_entropy=AntiEntropy(runs=engine.anti_entropy_runs, repaired=engine.anti_entropy_repairs),
    )


def _answer(body: Readiness) -> Response[Readiness]:
    return Response(body, status_code=503 if body.failed else 200)


@get(
    "/health/live",
    tags=["health"],
    summary="Liveness: the process is up",
    description="200 whenever the process answers HTTP. Checks no dependency (see /health/ready).",
    cache_control=None,
    sync_to_thread=False,
)
def live() -> Liveness:
    return Liveness()


@get(
    "/health/ready",
    tags=["health"],
    summary="Readiness: database, Redis, index staleness, relay",
    description=(
        "200 when this replica can answer correctly now; 503 otherwise, with `failed` naming the "
        "components that are not ok. `database` and `redis` (when configured) must answer within "
        "`health_check_timeout_seconds`; the decision `index` must be within "
        "`entitlements_max_staleness_seconds`; the outbox `relay`, where this process runs it, must have "
        "passed within `health_relay_max_age_seconds`. `GET /health` is an alias."
    ),
    responses={
        503: ResponseSpec(data_container=Readiness, description="Not ready: `failed` names the components")
    },
    cache_control=None,
)
async def ready(state: State) -> Response[Readiness]:
    return _answer(await readiness(state))


@get("/health", include_in_schema=False, cache_control=None)
async def health_alias(state: State) -> Response[Readiness]:
    return _answer(await readiness(state))


HEALTH_HANDLERS = [live, ready, health_alias]
