"""HTTP decision throughput: /v1/check, /v1/check/batch and /v1/authz/forward next to a bare Litestar route.

Targets (per server configuration, measured in the same run on the same machine):
  * /v1/check (permission, feature) and /v1/authz/forward: ≥ 0.8 × the bare endpoint's requests/s and
    p99 ≤ 1.5 × the bare endpoint's p99. The bare endpoint is each request's twin, asked the same way: forward
    auth's twin is `GET /bare` with the same headers (the proxy's and the user's token); a POST check's is
    `POST /bare` with the same headers and JSON body, which Litestar decodes (reading and decoding a body
    is the framework's cost, not the check's). The table
    also shows every row against the plain `GET /bare`, the stricter reading;
  * /v1/check/batch (100 checks per request): ≥ 200k decisions/s on one worker.

Setup: a seeded SQLite file in a temp dir (demo catalog + customers, Globex Corp on enterprise so metered
quotas never run out), Tiergate served as `tiergate serve` builds it (`gateway.app:create_served_app`,
factory: the lean decision routes, the heap frozen after start-up) by granian and by uvicorn as separate
processes, the bare app (`benchmarks/_bare_app.py`) served the same way by the same server (uvloop where
installed); load from `wrk -t2 -c32 -d10s --latency` with keep-alive. Each Tiergate row is compared with
a bare run just before it (on a shared machine, load drifts over a minute); `--rounds N` measures N such
pairs per row and keeps the median one: by ratio, or for the batch by its own decisions/s (a single pair
swings by ±15% here).
`--full-stack` adds the same rows with `lean_decisions = false` (every check through Litestar's stack).

    apt-get install wrk
    .venv/bin/python benchmarks/bench_http_check.py [--duration 10] [--connections 32] [--workers 1,2]
        [--rounds 3]

Exit status: 0 all targets met (in at least one server configuration), 1 a target missed, 2 wrk missing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from gateway.config import Settings  # noqa: E402

KEY = "tg_sk_bench_http_check_0123456789abcdef"
BATCH = 100
TARGET_THROUGHPUT_RATIO = 0.8
TARGET_P99_RATIO = 1.5
TARGET_BATCH_DECISIONS = 200_000
CUSTOMER_NAME = "Globex Corp"  # enterprise: api_calls unlimited, every feature granted


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# --- the database -------------------------------------------------------------------------------------


def prepare_database(path: Path) -> tuple[str, dict[str, str]]:
    from gateway.db.migrate import upgrade_head
    from gateway.db.session import Database
    from gateway.demo import seed_demo
    from gateway.kernel.clock import SystemClock

    url = f"sqlite+aiosqlite:///{path}"

    async def run() -> dict[str, str]:
        db = Database(url)
        await upgrade_head(db)
        async with db.unit_of_work() as session:
            result = await seed_demo(session, SystemClock(), api_key=KEY)
        await db.dispose()
        return result.customers

    return url, asyncio.run(run())


# --- servers ------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def server_command(kind: str, target: str, factory: bool, port: int, workers: int) -> list[str]:
    if kind == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", target, *(["--factory"] if factory else []),
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--no-access-log", "--log-level", "warning", "--app-dir", str(ROOT / "benchmarks"),
        ]  # fmt: skip
    # As `tiergate serve` runs granian (its runtime and task settings; GRANIAN_* in the environment win).
    settings = Settings()
    runtime = os.environ.get("GRANIAN_RUNTIME_MODE", settings.server_runtime_mode)
    tasks = os.environ.get("GRANIAN_TASK_IMPL", settings.server_task_impl)
    return [
        sys.executable, "-m", "granian", "--interface", "asgi", *(["--factory"] if factory else []),
        "--runtime-mode", runtime, "--task-impl", tasks,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--log-level", "warning", "--working-dir", str(ROOT / "benchmarks"), target,
    ]  # fmt: skip


def start_server(kind: str, app: str, workers: int, env: dict[str, str], tmp: Path) -> Server:
    target, factory = (
        ("gateway.app:create_served_app", True) if app.startswith("tiergate") else ("_bare_app:app", False)
    )
    return serve(kind, target, factory, workers, env, tmp, app)


def serve(
    kind: str, target: str, factory: bool, workers: int, env: dict[str, str], tmp: Path, app: str = "app"
) -> Server:
    """Serve the ASGI `target` (module:attribute, from benchmarks/) with `kind`; waits for /health."""
    port = free_port()
    log = tmp / f"{kind}-{app}-{workers}.log"
    process = subprocess.Popen(
        server_command(kind, target, factory, port, workers),
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(f"{kind} {app} ×{workers}", process, url, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                time.sleep(0.5 if workers == 1 else 2.0)  # let every worker finish its lifespan
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{server.name} did not start:\n{log.read_text()[-3000:]}")


# --- wrk ----------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    method: str
    path: str
    headers: dict[str, str]
    body: str | None = None
    decisions_per_request: int = 1


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: str


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if match is None:
        raise ValueError(f"cannot read a latency from {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def lua_script(case: Case, directory: Path, pace_ms: float | None = None) -> Path:
    """wrk's script for a case. `pace_ms`: each connection waits that long on average (uniformly 0 to
    twice it, so connections do not fall into step) before each request, which offers a fixed rate
    (connections x 1000 / pace_ms per second, a little less as responses take time) instead of as many
    requests as the server can take."""

    def quote(text: str) -> str:
        return json.dumps(text)  # a JSON string literal is a valid Lua string literal for ASCII text

    lines = [f"wrk.method = {quote(case.method)}"]
    for name, value in case.headers.items():
        lines.append(f"wrk.headers[{quote(name)}] = {quote(value)}")
    if case.body is not None:
        lines.append(f"wrk.body = {quote(case.body)}")
    if pace_ms is not None:
        lines.append(f"function delay() return math.random() * {2 * pace_ms:.3f} end")
    suffix = "" if pace_ms is None else f"_paced_{int(pace_ms * 1000)}"
    path = directory / (re.sub(r"[^a-z0-9]+", "_", case.name.lower()) + suffix + ".lua")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(
    url: str,
    case: Case,
    args: argparse.Namespace,
    directory: Path,
    duration: int,
    pace_ms: float | None = None,
) -> Result:
    script = lua_script(case, directory, pace_ms)
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, duration)}s", "--latency",
        "--timeout", "5s", "-s", str(script), url + case.path,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}")
    output = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p50 is None or p99 is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return Result(
        float(rps.group(1)),
        _ms(p50.group(1)),
        _ms(p99.group(1)),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(0) if errors else "",
    )


# --- the cases ----------------------------------------------------------------------------------------


@dataclass
class Fixture:
    customer: str
    user: str
    token: str


def fixture(url: str, customers: dict[str, str]) -> Fixture:
    customer = customers[CUSTOMER_NAME]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as client:
        members = client.get(f"/v1/customers/{customer}/members")
        members.raise_for_status()
        user = next(m["user"] for m in members.json()["data"] if m["role"] == "owner")
        response = client.post("/v1/tokens", json={"customer": customer, "user": user})
        response.raise_for_status()
        return Fixture(customer, user, response.json()["access_token"])


def cases(fx: Fixture) -> list[Case]:
    api = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    permission = {"customer": fx.customer, "user": fx.user, "resource": "projects/42", "action": "read"}
    feature = {"customer": fx.customer, "feature": "sso"}
    batch = [permission if i % 2 == 0 else feature for i in range(BATCH)]
    forward = {
        "Authorization": f"Bearer {fx.token}",
        "X-Original-Method": "GET",
        "X-Original-URI": "/api/projects/42",
    }
    return [
        Case("/v1/check permission", "POST", "/v1/check", api, json.dumps(permission)),
        Case("/v1/check feature", "POST", "/v1/check", api, json.dumps(feature)),
        Case("/v1/authz/forward", "GET", "/v1/authz/forward", forward),
        Case(
            f"/v1/check/batch ×{BATCH}", "POST", "/v1/check/batch", api, json.dumps({"checks": batch}), BATCH
        ),
    ]


def verify(url: str, case: Case) -> None:
    """One request by hand: it must succeed and allow, or the benchmark would measure refusals."""
    response = httpx.request(
        case.method, url + case.path, headers=case.headers, content=case.body, timeout=10
    )
    if response.status_code != 200:
        raise SystemExit(f"{case.name}: HTTP {response.status_code}: {response.text[:300]}")
    if case.path.startswith("/v1/check"):
        body = response.json()
        results = body.get("results", [body])
        refused = [r for r in results if not r["allowed"]]
        if refused or len(results) != case.decisions_per_request:
            raise SystemExit(f"{case.name}: unexpected answer {json.dumps(body)[:300]}")


# --- main ---------------------------------------------------------------------------------------------


@dataclass
class Row:
    config: str
    name: str
    result: Result
    decisions: int
    bare: Result | None
    bare_get: Result | None = None  # the plain GET /bare of the same run, for the stricter reading

    @property
    def throughput_ratio(self) -> float | None:
        return self.result.rps / self.bare.rps if self.bare else None

    @property
    def p99_ratio(self) -> float | None:
        return self.result.p99_ms / self.bare.p99_ms if self.bare else None


def measure(
    kind: str,
    workers: int,
    env: dict[str, str],
    customers: dict[str, str],
    args: argparse.Namespace,
    tmp: Path,
    lean: bool = True,
) -> list[Row]:
    config = f"{kind} ×{workers}" + ("" if lean else " full stack")
    print(f"\n== {config} ==", flush=True)
    bare_case = Case("bare GET /bare", "GET", "/bare", {})

    def twin(case: Case) -> Case:
        """The bare endpoint asked the same way as `case`: same method, headers and body (a POST check's
        twin has Litestar decode the same JSON), so the ratio is what Tiergate adds to that request."""
        if case.method == "GET" and not case.headers:
            return bare_case
        return Case(f"bare {case.method} /bare ({case.name})", case.method, "/bare", case.headers, case.body)

    # Both servers stay up (the idle one costs nothing) and a bare run precedes every Tiergate row, which
    # is compared with that adjacent run: on a shared machine, load drifts over a minute.
    bare_server = start_server(kind, "bare", workers, env, tmp)
    try:
        tiergate_env = env if lean else {**env, "TIERGATE_LEAN_DECISIONS": "false"}
        server = start_server(kind, "tiergate", workers, tiergate_env, tmp)
    except BaseException:
        bare_server.stop()
        raise
    rows: list[Row] = []
    bares: list[Result] = []
    try:
        verify(bare_server.url, bare_case)
        run_wrk(bare_server.url, bare_case, args, tmp, args.warmup)
        bares.append(run_wrk(bare_server.url, bare_case, args, tmp, args.duration))
        fx = fixture(server.url, customers)
        for case in cases(fx):
            verify(server.url, case)
            baseline = twin(case)
            pairs: list[tuple[Result, Result]] = []
            for _ in range(args.rounds):
                if baseline is not bare_case:
                    run_wrk(bare_server.url, baseline, args, tmp, args.warmup)
                bare = run_wrk(bare_server.url, baseline, args, tmp, args.duration)
                if baseline is bare_case:
                    bares.append(bare)
                run_wrk(server.url, case, args, tmp, args.warmup)
                result = run_wrk(server.url, case, args, tmp, args.duration)
                print(
                    f"  {case.name}: {result.rps:,.0f} req/s "
                    f"({baseline.name} just before: {bare.rps:,.0f} req/s, {result.rps / bare.rps:.2f}×)",
                    flush=True,
                )
                pairs.append((result, bare))
            # The median pair, so one noisy minute on a shared machine does not decide the row: by ratio
            # where the target is a ratio, by Tiergate's own rate where it is absolute (the batch).
            if case.decisions_per_request > 1:
                pairs.sort(key=lambda pair: pair[0].rps)
            else:
                pairs.sort(key=lambda pair: pair[0].rps / pair[1].rps)
            result, bare = pairs[len(pairs) // 2]
            rows.append(Row(config, case.name, result, case.decisions_per_request, bare))
    finally:
        server.stop()
        bare_server.stop()
    median = sorted(bares, key=lambda r: r.rps)[len(bares) // 2]
    for row in rows:
        row.bare_get = median
    return [Row(config, f"bare GET /bare (median of {len(bares)})", median, 1, None), *rows]


def print_table(rows: list[Row]) -> None:
    header = (
        "server", "what", "req/s", "decisions/s", "p50 ms", "p99 ms", "ratio vs twin", "p99 ratio",
        "ratio vs bare GET",
    )  # fmt: skip
    table = [header]
    for row in rows:
        r = row.result
        table.append(
            (
                row.config,
                row.name + (f"  [{r.non_2xx} non-2xx]" if r.non_2xx else ""),
                f"{r.rps:,.0f}",
                f"{r.rps * row.decisions:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                "—" if row.throughput_ratio is None else f"{row.throughput_ratio:.2f}",
                "—" if row.p99_ratio is None else f"{row.p99_ratio:.2f}",
                "—" if row.bare_get is None else f"{r.rps / row.bare_get.rps:.2f}",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        print(
            " | ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("-+-".join("-" * w for w in widths))


def misses(rows: list[Row]) -> list[str]:
    out = []
    for row in rows:
        r = row.result
        if r.non_2xx or r.errors:
            out.append(f"{row.config} {row.name}: {r.non_2xx} non-2xx responses {r.errors}".rstrip())
        if row.bare is None:
            continue
        if row.decisions > 1:
            if r.rps * row.decisions < TARGET_BATCH_DECISIONS:
                out.append(
                    f"{row.config} {row.name}: {r.rps * row.decisions:,.0f} decisions/s "
                    f"< {TARGET_BATCH_DECISIONS:,}"
                )
            continue
        if row.throughput_ratio is not None and row.throughput_ratio < TARGET_THROUGHPUT_RATIO:
            out.append(
                f"{row.config} {row.name}: throughput {row.throughput_ratio:.2f} × bare "
                f"< {TARGET_THROUGHPUT_RATIO}"
            )
        if row.p99_ratio is not None and row.p99_ratio > TARGET_P99_RATIO:
            out.append(f"{row.config} {row.name}: p99 {row.p99_ratio:.2f} × bare > {TARGET_P99_RATIO}")
    return out


def server_env(tmp: Path, url: str) -> dict[str, str]:
    """The environment every served Tiergate gets: the seeded database, no migrations, no scheduler."""
    config = tmp / "config.toml"
    config.write_text("[tiergate]\n")
    return {
        **os.environ,
        "TIERGATE_CONFIG": str(config),
        "TIERGATE_DATABASE_URL": url,
        "TIERGATE_MIGRATE_ON_START": "false",
        "TIERGATE_SCHEDULER_ENABLED": "false",
        "TIERGATE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured row")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of load before each row")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="adjacent (bare, Tiergate) pairs per row; the median ratio's pair is kept",
    )
    parser.add_argument("--workers", default="1", help="comma-separated worker counts to try")
    parser.add_argument("--servers", default="granian,uvicorn", help="tried when installed")
    parser.add_argument(
        "--full-stack", action="store_true", help="also measure with lean_decisions = false (before/after)"
    )
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    servers = [s for s in args.servers.split(",") if installed(s)]
    if not servers:
        print("neither uvicorn nor granian is installed", file=sys.stderr)
        return 2
    parser_name = "httptools" if installed("httptools") else "h11"
    loop_name = "uvloop" if installed("uvloop") else "asyncio"
    print(
        f"cpus={os.cpu_count()}  servers={servers}  uvicorn http={parser_name} loop={loop_name}  "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (+{args.warmup:g}s warm-up)",
        flush=True,
    )
    skipped = [s for s in args.servers.split(",") if s not in servers]
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-http-check-") as directory:
        tmp = Path(directory)
        url, customers = prepare_database(tmp / "bench.sqlite3")
        env = server_env(tmp, url)
        for kind in servers:
            for workers in (int(w) for w in args.workers.split(",")):
                for lean in (True, False) if args.full_stack else (True,):
                    try:
                        rows += measure(kind, workers, env, customers, args, tmp, lean)
                    except (RuntimeError, subprocess.CalledProcessError) as exc:
                        print(f"{kind} ×{workers}: not measured: {exc}", file=sys.stderr)

    if not rows:
        return 1
    print()
    print_table(rows)
    by_config: dict[str, list[Row]] = {}
    for row in rows:
        by_config.setdefault(row.config, []).append(row)
    missed = {config: misses(config_rows) for config, config_rows in by_config.items()}
    print()
    for config, lines in missed.items():
        print(f"{config}: " + ("all targets met" if not lines else "targets missed"))
        for line in lines:
            print(f"  MISSED {line}")
    # "uvicorn or granian, whichever is faster": pass when any measured configuration meets every target.
    return 0 if any(not lines for lines in missed.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
