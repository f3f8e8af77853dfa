"""Several server workers: /metrics from any one of them answers for all (prometheus multiprocess mode)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WORKER = """
import os
from gateway.observability.metrics import DECISIONS, INDEX_VERSION, REQUEST_SECONDS
DECISIONS.labels("policy", "allowed").inc(3)
REQUEST_SECONDS.labels("POST", "/v1/check", "200").observe(0.002)
INDEX_VERSION.set(int(os.environ["VERSION"]))
"""
SCRAPE = "import sys; from gateway.observability.metrics import render; sys.stdout.write(render().decode())"


def test_counters_add_up_over_workers_and_index_versions_are_kept_per_worker(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for version in ("41", "42"):
        subprocess.run([sys.executable, "-c", WORKER], env={**env, "VERSION": version}, check=True)
    text = subprocess.run(
        [sys.executable, "-c", SCRAPE], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'tiergate_decisions_total{kind="policy",reason="allowed"} 6.0' in text
    assert (
        'tiergate_http_request_duration_seconds_count{method="POST",route="/v1/check",status="200"} 2.0'
        in text
    )
    versions = sorted(
        line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith("tiergate_index_version{")
    )
    # One per process (label pid), as liveall keeps them: both workers', and the scraping process's own.
    assert versions == ["0.0", "41.0", "42.0"]
