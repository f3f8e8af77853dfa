"""A graceful shutdown of `tiergate serve` does not wait for open `GET /v1/changes` streams (each may last
`changes_stream_max_seconds`, 300 s): SIGTERM ends them at once, and the client resumes elsewhere with
Last-Event-ID. A real granian process, stopped the way an orchestrator stops it (SIGTERM to its group)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ADMIN_KEY


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigterm_ends_open_change_streams_and_the_server_exits_promptly(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "TIERGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'tg.sqlite3'}",
        "TIERGATE_REDIS_URL": "",
        "TIERGATE_BOOTSTRAP_API_KEY": ADMIN_KEY,
        "TIERGATE_SCHEDULER_ENABLED": "false",
        "TIERGATE_CHANGES_STREAM_MAX_SECONDS": "300",
        "TIERGATE_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, f"tiergate serve exited with {process.returncode}"
            assert time.monotonic() < deadline, "tiergate serve did not come up"
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with (
            httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(5, read=60)) as client,
            client.stream("GET", "/v1/changes") as stream,
        ):
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert "event: hello" in [next(lines) for _ in range(3)]  # the stream is open
            os.killpg(process.pid, signal.SIGTERM)
            signalled = time.monotonic()
            rest = list(lines)  # until the server ends the stream
            ended = time.monotonic() - signalled
        assert "event: hello" not in rest
        assert ended < 5, f"the stream stayed open {ended:.1f}s after SIGTERM"
        process.wait(timeout=30)
        exited = time.monotonic() - signalled
        assert exited < 10, f"tiergate serve took {exited:.1f}s to exit"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
