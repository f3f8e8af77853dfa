"""HTTP with the rules every call follows: the API key, problem+json errors, idempotency keys on POST,
and retries only where a retry cannot do a thing twice.

Retried: connection errors, timeouts, 429 and 502/503/504 — for GETs, and for POSTs because every POST
carries an `Idempotency-Key` that stays the same across the retries (Tiergate replays the first answer).
Never retried: other 4xx (the request is wrong) and 500 (a retry would most likely fail the same way).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import httpx

from .errors import ApiError, ConnectionFailed

RETRY_STATUSES = frozenset({429, 502, 503, 504})


class Transport:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff_seconds: float = 0.2,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self._own_client = client is None
        self.http = client or httpx.AsyncClient(base_url=self.base_url, timeout=timeout)

    async def aclose(self) -> None:
        if self._own_client:
            await self.http.aclose()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}", "Accept": "application/json", **(extra or {})}

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        extra = dict(headers or {})
        if method == "POST":
            # One key for every attempt of this call: a retry after a lost answer is replayed, not redone.
            extra["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        query = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                response = await self.http.request(
                    method, self.base_url + path, json=json, params=query, headers=self.headers(extra)
                )
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(f"{method} {path}: {exc!r}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
                    if response.status_code >= 400:
                        raise ApiError(response.status_code, _problem(response))
                    return response
            attempt += 1
            await asyncio.sleep(self.backoff_seconds * (2 ** (attempt - 1)) * (0.5 + random.random()))

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        return response.json() if response.content else None


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"title": response.reason_phrase, "detail": response.text[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)}
