"""Webhook delivery: every recorded event is POSTed to its account's `webhook_url`, signed, and retried
with exponential backoff until a 2xx answer or the last attempt.

Signature (as Stripe's, under its own header name):
    Sandbox-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(webhook_secret, "<t>.<raw body>")>
`t` is the wall time of *this* attempt (each retry signs anew), so a receiver's replay window is about
transport, whatever test clock the event's own `created` is on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable

import httpx

from gateway.sandbox.service import SandboxConfig
from gateway.sandbox.store import Store

log = logging.getLogger("tiergate.sandbox")

SIGNATURE_HEADER = "Sandbox-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class Deliverer:
    def __init__(
        self, store: Store, config: SandboxConfig, *, wall_time: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.config = config
        self.wall_time = wall_time
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._client: httpx.AsyncClient | None = None

    def nudge(self) -> None:
        self._wake.set()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.config.webhook_timeout_seconds)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver_due(self) -> int:
        """One pass over the events due now, oldest first; returns how many were delivered. One pass
        at a time (the ticker and a clock advance may both ask), so no event goes out twice at once."""
        delivered = 0
        async with self._lock:
            for row in self.store.due_events(self.wall_time()):
                if await self._attempt(row["seq"], row["account_id"], row["body"], row["attempts"]):
                    delivered += 1
        return delivered

    async def _attempt(self, seq: int, account_id: str, body_text: str, attempts: int) -> bool:
        account = self.store.account(account_id)
        url = account.get("webhook_url") if account else None
        if not account or not url:
            with self.store.transaction():
                self.store.event_failed(seq, "the account has no webhook_url", None)
            return False
        body = body_text.encode()
        now = self.wall_time()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "tiergate-sandbox/1",
            SIGNATURE_HEADER: sign(account["webhook_secret"], int(now), body),
        }
        try:
            response = await self._http().post(url, content=body, headers=headers)
            error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self.store.transaction():
            if error is None:
                self.store.event_delivered(seq, self.wall_time())
                return True
            attempt = attempts + 1
            if attempt >= self.config.webhook_max_attempts:
                retry_at = None
                log.warning(
                    "sandbox webhook %s to %s given up after %d attempts: %s", seq, url, attempt, error
                )
            else:
                backoff = self.config.webhook_backoff_seconds * 2 ** (attempt - 1)
                retry_at = self.wall_time() + min(backoff, self.config.webhook_max_backoff_seconds)
            self.store.event_failed(seq, error, retry_at)
        return False

    async def run(self, tick: Callable[[], int]) -> None:
        """The background loop: what fell due on the sandbox's own clock (`tick`), then the webhooks
        due; woken at once by a new event, else every `tick_seconds`."""
        while True:
            try:
                tick()
                await self.deliver_due()
            except Exception:  # a bad row must not stop the loop for every other account
                log.exception("sandbox background pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.tick_seconds)


def event_body(text: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(text)
    return value
