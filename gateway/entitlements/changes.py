"""Change nudges between replicas: "something committed, catch up now".

Only a hint travels here (the data itself is read from the outbox), so a lost or duplicated message is
harmless: the engine's poll bounds the delay of a lost one. In embedded mode the nudge stays in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway.entitlements.engine import Engine

log = logging.getLogger("tiergate.changes")
CHANNEL = "tg:changes"


class ChangeNotifier:
    def __init__(self, engine: Engine, redis: Any | None = None) -> None:
        self.engine = engine
        self.redis = redis

    async def changed(self) -> None:
        self.engine.nudge()
        if self.redis is not None:
            try:
                await self.redis.publish(CHANNEL, b"1")
            except Exception:  # Redis down: other replicas notice at their next poll
                log.warning("could not publish a change nudge", exc_info=True)

    async def listen(self) -> None:
        """Nudge the local engine whenever another replica says something changed (reconnecting)."""
        if self.redis is None:
            return
        while True:
            try:
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                try:
                    while True:
                        # A bounded wait, not `listen()`: the client has a read timeout (a stalled
                        # Redis must not hold anyone), and an idle channel is not an error.
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self.engine.nudge()
                finally:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("change channel lost; retrying (the poll covers the gap)", exc_info=True)
                await asyncio.sleep(1.0)
