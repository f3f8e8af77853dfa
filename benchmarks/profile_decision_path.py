"""The decision routes' own cost, without a server or a network: what `bench_http_check.py` cannot isolate.

Builds Tiergate as `tiergate serve` does (on the benchmark's seeded SQLite database, lean routes on), and
calls in one process, on one event loop:

* `forward_decision` (forward auth's decision: token, route, check, quota count, identity headers) and
  `decide_batch` for 100 checks (half permissions, half on/off features), the functions themselves;
* the whole ASGI app for `GET /v1/authz/forward` and `POST /v1/check/batch` (the lean front: key or token,
  body decoding, the decision, the response, the request id and latency histogram);
* the bare Litestar app of `bench_http_check.py` for `GET /bare` with forward auth's headers: the baseline,
  what the framework alone costs for one request.

Each figure is the best of `--rounds` timed loops (the least disturbed by the rest of the machine), in
µs per call; the last column is the ratio to the bare app's call in the same run. The batch's rows also
give decisions/s. No target is checked here (those are HTTP figures, `bench_http_check.py`); it prints
where the time goes when those figures move.

    .venv/bin/python benchmarks/profile_decision_path.py [--rounds 5] [--calls 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import _bare_app  # noqa: E402
import msgspec  # noqa: E402
from bench_http_check import BATCH, CUSTOMER_NAME, KEY, prepare_database  # noqa: E402
from litestar.testing import AsyncTestClient  # noqa: E402

from gateway.app import create_app  # noqa: E402
from gateway.config import load_settings  # noqa: E402
from gateway.entitlements import schemas as s  # noqa: E402
from gateway.entitlements.forward import forward_decision  # noqa: E402
from gateway.entitlements.http import decide_batch  # noqa: E402
from gateway.entitlements.service import CheckService  # noqa: E402
from gateway.identity.http import admit  # noqa: E402

Call = Callable[[], Awaitable[Any]]


def asgi_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def best_of(call: Call, calls: int, rounds: int) -> float:
    """µs per call: the fastest of `rounds` loops of `calls` calls, after a tenth of that as warm-up."""
    best = float("inf")
    for _ in range(rounds):
        for _ in range(calls // 10):
            await call()
        started = time.perf_counter()
        for _ in range(calls):
            await call()
        best = min(best, (time.perf_counter() - started) / calls * 1e6)
    return best


async def run(url: str, customers: dict[str, str], args: argparse.Namespace) -> None:
    app = create_app(load_settings(env={"TIERGATE_DATABASE_URL": url}))
    async with AsyncTestClient(app) as client:  # runs the app's start-up: index loaded, signer ready
        client.headers["Authorization"] = f"Bearer {KEY}"
        customer = customers[CUSTOMER_NAME]
        members = (await client.get(f"/v1/customers/{customer}/members")).json()["data"]
        user = next(m["user"] for m in members if m["role"] == "owner")
        issued = await client.post("/v1/tokens", json={"customer": customer, "user": user})
        token = issued.json()["access_token"]
        state = app.state

        forward_headers = {
            "authorization": f"Bearer {token}",
            "x-original-method": "GET",
            "x-original-uri": "/api/projects/42",
        }
        forward_scope = asgi_scope("GET", "/v1/authz/forward", [])
        raw_forward = [(k.encode(), v.encode()) for k, v in forward_headers.items()] + [(b"host", b"t")]
        permission = {"customer": customer, "user": user, "resource": "projects/42", "action": "read"}
        feature = {"customer": customer, "feature": "sso"}
        body = json.dumps({"checks": [permission if i % 2 == 0 else feature for i in range(BATCH)]}).encode()
        batch = msgspec.json.decode(body, type=s.BatchCheckRequest, strict=True)
        principal = await admit("POST", "/v1/check/batch", f"Bearer {KEY}", state)
        raw_batch = [
            (b"authorization", f"Bearer {KEY}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"host", b"t"),
        ]
        answer = await forward_decision(forward_headers, forward_scope, state)
        if answer.status != 200:
            raise SystemExit(f"forward auth refused the benchmark's request: {answer}")

        async def discard(message: Any) -> None:
            return None

        async def no_body() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def batch_body() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        def forward_app() -> Awaitable[Any]:
            return app(asgi_scope("GET", "/v1/authz/forward", raw_forward), no_body, discard)

        def batch_app() -> Awaitable[Any]:
            return app(asgi_scope("POST", "/v1/check/batch", raw_batch), batch_body, discard)

        def bare_app() -> Awaitable[Any]:
            return _bare_app.app(asgi_scope("GET", "/bare", raw_forward), no_body, discard)

        few = args.calls // 50
        cases: list[tuple[str, Call, int, int]] = [  # name, call, calls, decisions per call
            ("bare Litestar app: GET /bare", bare_app, args.calls, 0),
            (
                "forward_decision",
                lambda: forward_decision(forward_headers, forward_scope, state),
                args.calls,
                1,
            ),
            ("app: GET /v1/authz/forward", forward_app, args.calls, 1),
            (
                f"decide_batch ×{BATCH}",
                lambda: decide_batch(principal, batch, CheckService(state.engine)),
                few,
                BATCH,
            ),
            (f"app: POST /v1/check/batch ×{BATCH}", batch_app, few, BATCH),
        ]
        timings = [(name, await best_of(call, n, args.rounds), d) for name, call, n, d in cases]

    bare = timings[0][1]
    rows = [("what", "µs per call", "decisions/s", "× bare app call")]
    for name, micros, decisions in timings:
        per_second = f"{decisions / micros * 1e6:,.0f}" if decisions else "—"
        rows.append((name, f"{micros:.1f}", per_second, f"{micros / bare:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for n, r in enumerate(rows):
        print(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url, customers = prepare_database(Path(tmp) / "tiergate.sqlite")
        asyncio.run(run(url, customers, args))


if __name__ == "__main__":
    main()
