"""Redis clients with explicit timeouts: the one place the app builds a Redis client.

redis-py's defaults wait forever for a reply and retry a timed-out command three times with a backoff
starting at a second, so one `CLIENT PAUSE` (or a failover) held a quota check for seconds. Every client
here connects and reads within a bound, and retries at most as asked.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff


def redis_client(url: str, *, timeout_seconds: float, read_timeout: bool = True, retries: int = 0) -> Redis:
    """A client whose connect (and, with `read_timeout`, every reply) is bounded by `timeout_seconds`.

    `read_timeout=False` is for clients that block on purpose (saq's BLMOVE and pub/sub listener): they
    keep the connect bound and TCP keepalive, so a dead server is still noticed. `retries` re-sends a
    command after a connection error or timeout, with a short backoff; the hot path uses none, because a
    retry would double its worst case."""
    retry = (
        Retry(NoBackoff(), 0)
        if retries <= 0
        else Retry(ExponentialBackoff(cap=timeout_seconds, base=min(0.05, timeout_seconds)), retries)
    )
    client: Redis = Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=timeout_seconds if read_timeout else None,
        socket_keepalive=True,
        retry=retry,
    )
    return client
