"""Instrumented Tiergate for `profile_check_stalls.py`: the real app, plus probes that timestamp what could
stall a request, written to `$TIERGATE_PROBE_OUT` (JSON) when the server shuts down.

Probes (all with `time.perf_counter()` timestamps, one clock for the requests and the suspects):
* every HTTP request: start, end, path;
* API-key cache fills (`ApiKeyService.authenticate`, only called on a cache miss): start, end;
* the engine's outbox catch-up and anti-entropy, the revocation list's sync, the relay's pass;
* garbage collections (`gc.callbacks`): generation and pause;
* event-loop lag: a task that sleeps 1 ms and records how late it woke (> 5 ms), i.e. the loop was
  blocked by something synchronous.

    uvicorn --app-dir benchmarks --factory _stall_probe:create_app

`TIERGATE_PROBE_PLAIN=1` builds the app without freezing the heap; with `TIERGATE_LEAN_DECISIONS=false`
too, the checks go through the full stack: the "before" of `profile_check_stalls.py --before`.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from litestar import Litestar

from gateway.app import create_app as create_plain
from gateway.app import create_served_app
from gateway.entitlements.engine import Engine
from gateway.identity.revocation import RevocationList
from gateway.identity.service import ApiKeyService
from gateway.provisioning.jobs import BackgroundRelay

EVENTS: list[tuple[str, float, float]] = []  # (kind, start, end)
REQUESTS: list[tuple[str, float, float]] = []  # (path, start, end)
LOOP_LAG_MS = 5.0


def _timed(kind: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            EVENTS.append((kind, start, time.perf_counter()))

    return wrapper


def _patch() -> None:
    ApiKeyService.authenticate = _timed("key_cache_fill", ApiKeyService.authenticate)  # type: ignore[method-assign]
    Engine.sync = _timed("engine_sync", Engine.sync)  # type: ignore[method-assign]
    Engine.check_consistency = _timed("anti_entropy", Engine.check_consistency)  # type: ignore[method-assign]
    RevocationList.sync = _timed("revocation_sync", RevocationList.sync)  # type: ignore[method-assign]
    BackgroundRelay.tick = _timed("relay_tick", BackgroundRelay.tick)  # type: ignore[method-assign]

    gc_started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_started["t"] = time.perf_counter()
        else:
            EVENTS.append((f"gc_gen{info['generation']}", gc_started.get("t", 0.0), time.perf_counter()))

    gc.callbacks.append(on_gc)


async def _watch_loop() -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        after = time.perf_counter()
        if (after - before) * 1000 > 1 + LOOP_LAG_MS:
            EVENTS.append(("loop_blocked", before + 0.001, after))


def create_app() -> Any:
    _patch()
    # As `tiergate serve` builds it (heap frozen after start-up), or `TIERGATE_PROBE_PLAIN=1`: without.
    plain = os.environ.get("TIERGATE_PROBE_PLAIN") == "1"
    app: Litestar = create_plain() if plain else create_served_app()
    out = os.environ.get("TIERGATE_PROBE_OUT", "/tmp/tiergate-probe.json")
    watcher: list[asyncio.Task[None]] = []

    async def probe(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":

            async def lifespan_send(message: Any) -> None:
                if message["type"] == "lifespan.startup.complete":
                    watcher.append(asyncio.create_task(_watch_loop()))
                if message["type"] == "lifespan.shutdown.complete":
                    for task in watcher:
                        task.cancel()
                    # At shutdown, once: blocking the loop here costs no measured request.
                    Path(out).write_text(json.dumps({"events": EVENTS, "requests": REQUESTS}))  # noqa: ASYNC240
                await send(message)

            await app(scope, receive, lifespan_send)
            return
        start = time.perf_counter()
        try:
            await app(scope, receive, send)
        finally:
            REQUESTS.append((scope.get("path", ""), start, time.perf_counter()))

    return probe
