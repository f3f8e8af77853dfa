"""Replaying recorded provider HTTP, asserting every outgoing request.

A recording (`recordings/<provider>/<scenario>.json`) is an ordered list of interactions:

    {"request":  {"method", "url", "headers"?, "query"?, "form"? | "json"?},
     "response": {"status", "headers"?, "body"?}  |  {"error": "timeout" | "connect"}}

The replayer answers the requests in that order and checks each one against its recorded request: method,
URL (scheme, host, path), the listed headers (the `Idempotency-Key` above all), the query, and the whole
form (Stripe) or JSON (Mollie) body, exactly. A mismatch is kept and raised when the scenario ends (an
exception raised inside the HTTP layer would be wrapped by the SDK into a connection error and look like
"provider unavailable"); so is a recorded request that was never made.

Stripe's SDK speaks httpx (replayed with respx); Mollie's speaks requests (replayed with responses).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import requests
import responses
import respx

RECORDINGS = Path(__file__).parent / "recordings"
_ANY_URL = re.compile(r".*")


@dataclass
class Recording:
    name: str
    interactions: list[dict[str, Any]]
    made: int = 0
    mismatches: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, provider: str, scenario: str | None) -> Recording:
        if scenario is None:  # no HTTP expected at all
            return cls(name=f"{provider}/(none)", interactions=[])
        data = json.loads((RECORDINGS / provider / f"{scenario}.json").read_text())
        return cls(name=f"{provider}/{scenario}", interactions=list(data["interactions"]))

    def next(self, method: str, url: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The recorded answer to this request; a mismatch is noted (and answered with a 599 that no
        provider sends, so the adapter fails loudly too)."""
        with self.lock:
            index = self.made
            self.made += 1
        if index >= len(self.interactions):
            self.mismatches.append(f"{self.name}: unexpected request #{index + 1}: {method} {url}")
            return {"status": 599, "body": {"error": {"message": "not recorded"}}}
        interaction = self.interactions[index]
        problems = compare(interaction["request"], method, url, headers, body)
        if problems:
            self.mismatches.append(
                f"{self.name}: request #{index + 1} ({method} {url}): " + "; ".join(problems)
            )
            return {"status": 599, "body": {"error": {"message": "request does not match the recording"}}}
        return dict(interaction["response"])

    def verify(self) -> None:
        if self.mismatches:
            raise AssertionError("\n".join(self.mismatches))
        if self.made != len(self.interactions):
            missing = [
                i["request"]["method"] + " " + i["request"]["url"] for i in self.interactions[self.made :]
            ]
            raise AssertionError(f"{self.name}: recorded requests never made: {missing}")


def compare(
    expected: Mapping[str, Any], method: str, url: str, headers: Mapping[str, str], body: bytes
) -> list[str]:
    problems: list[str] = []
    if method.upper() != expected["method"]:
        problems.append(f"method {method} != {expected['method']}")
    actual, wanted = urlsplit(url), urlsplit(expected["url"])
    if (actual.scheme, actual.netloc, actual.path) != (wanted.scheme, wanted.netloc, wanted.path):
        problems.append(f"url {actual.scheme}://{actual.netloc}{actual.path} != {expected['url']}")
    query = dict(parse_qsl(actual.query, keep_blank_values=True))
    if query != expected.get("query", {}):
        problems.append(f"query {query} != {expected.get('query', {})}")
    lowered = {name.lower(): value for name, value in headers.items()}
    for name, value in (expected.get("headers") or {}).items():
        if value is None:
            if name.lower() in lowered:
                problems.append(f"header {name} must be absent, got {lowered[name.lower()]!r}")
        elif lowered.get(name.lower()) != value:
            problems.append(f"header {name}: {lowered.get(name.lower())!r} != {value!r}")
    if "form" in expected:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if form != expected["form"]:
            problems.append(f"form {form} != {expected['form']}")
    if "json" in expected:
        sent = json.loads(body) if body else None
        if sent != expected["json"]:
            problems.append(f"json {sent} != {expected['json']}")
    if "form" not in expected and "json" not in expected and body:
        problems.append(f"unexpected body {body!r}")
    return problems


@asynccontextmanager
async def _verified(recording: Recording) -> AsyncIterator[None]:
    """Mismatches always fail the test (they explain whatever the adapter then did); requests never made
    fail it only when the scenario itself finished normally."""
    try:
        yield
    except BaseException:
        if recording.mismatches:
            recording.verify()
        raise
    recording.verify()


def _headers(answer: Mapping[str, Any]) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    headers.update(answer.get("headers") or {})
    return headers


@asynccontextmanager
async def replay_httpx(recording: Recording) -> AsyncIterator[Recording]:
    """Every httpx request (Stripe's SDK) is answered from `recording`."""

    def answer(request: httpx.Request) -> httpx.Response:
        reply = recording.next(request.method, str(request.url), dict(request.headers), request.content)
        if reply.get("error") == "timeout":
            raise httpx.ReadTimeout("recorded: the provider did not answer in time", request=request)
        if reply.get("error") == "connect":
            raise httpx.ConnectError("recorded: connection refused", request=request)
        return httpx.Response(reply["status"], headers=_headers(reply), content=json.dumps(reply.get("body")))

    with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
        mock.route().mock(side_effect=answer)
        async with _verified(recording):
            yield recording


@asynccontextmanager
async def replay_requests(recording: Recording) -> AsyncIterator[Recording]:
    """Every `requests` request (Mollie's SDK) is answered from `recording`."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        reply = recording.next(str(request.method), str(request.url), dict(request.headers), raw)
        if reply.get("error") == "timeout":
            raise requests.exceptions.ReadTimeout("recorded: the provider did not answer in time")
        if reply.get("error") == "connect":
            raise requests.exceptions.ConnectionError("recorded: connection refused")
        content = "" if reply["status"] == 204 else json.dumps(reply.get("body"))
        return reply["status"], _headers(reply), content

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for method in ("GET", "POST", "PATCH", "DELETE"):
            mock.add_callback(method, _ANY_URL, callback=answer)
        async with _verified(recording):
            yield recording
