"""The README cannot silently rot: its two commands exist, and every API call in it names a real operation.

The curl tour itself was run by hand against `tiergate serve --demo`; this test keeps its paths and methods
in step with the app's OpenAPI document (paths are matched against the templates, `$VAR` standing for an id).
"""

from __future__ import annotations

import itertools
import os
import re
import shlex
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gateway.app import create_app
from gateway.config import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
COMMANDS = ("./scripts/serve-demo", "./scripts/test")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# A /v1 path as written in a shell command or in prose: stops at whitespace, quotes, `?` or a backtick.
V1_PATH = re.compile(r"(?:/ofrep)?/v1/[^\s\"'`?)]*")
PROSE_CALL = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/v1/[^\s`?]*)")


def readme() -> str:
    return README.read_text(encoding="utf-8")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def shell_commands(block: str) -> list[str]:
    """The block's commands, one per logical line (comments dropped, `\\` continuations joined)."""
    joined = re.sub(r"\\\n", " ", block)
    lines = (line.strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def curl_calls(text: str) -> list[tuple[str, str]]:
    """(METHOD, path) of every curl to /v1 in the README's code blocks, `$(…)` substitutions included."""
    calls: list[tuple[str, str]] = []
    for block in code_blocks(text):
        for command in shell_commands(block):
            for segment in re.findall(r"curl\s[^|;)]*", command):
                calls.extend(_curl_call(segment))
    return calls


def _curl_call(segment: str) -> list[tuple[str, str]]:
    words = shlex.split(segment, comments=True)
    method = "GET"
    if any(w in {"--json", "-d", "--data", "--data-raw", "--data-binary"} for w in words):
        method = "POST"
    for flag, value in itertools.pairwise(words):
        if flag in {"-X", "--request"}:
            method = value.upper()
    return [(method, m.group(0)) for w in words for m in [V1_PATH.search(w)] if m]


def to_concrete(path: str) -> str:
    """`/v1/subscriptions/$SUB/cancel` → `/v1/subscriptions/X/cancel` (shell variables are ids)."""
    path = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "X", path)
    return path.rstrip("/") or "/"


@cache
def openapi_operations() -> dict[str, set[str]]:
    settings = Settings(
        database_url="sqlite+aiosqlite:///:memory:", migrate_on_start=False, scheduler_enabled=False
    )
    # Only the document's paths matter here; deprecation warnings raised while the app is built are the
    # business of the API tests, which build the same app with warnings as errors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        app = create_app(settings)
        schema: dict[str, Any] = app.openapi_schema.to_schema()
    return {
        path: {m.upper() for m in item if m.upper() in HTTP_METHODS} for path, item in schema["paths"].items()
    }


def matching_template(path: str, operations: dict[str, set[str]]) -> str | None:
    for template in operations:
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path):
            return template
    return None


def test_the_two_commands_come_first_and_the_scripts_exist() -> None:
    text = readme()
    first_section = text.split("\n## ", 1)[0]
    blocks = [shell_commands(b) for b in code_blocks(first_section)]
    firsts = [[c.split()[0] for c in cmds] for cmds in blocks]
    assert any(all(c in f for c in COMMANDS) for f in firsts), (
        f"README.md must show {COMMANDS} in a code block before its first section"
    )
    for command in COMMANDS:
        script = ROOT / command
        assert script.is_file(), f"{command} is named in README.md but does not exist"
        assert os.access(script, os.X_OK), f"{command} is not executable (chmod +x, and commit the mode)"


def test_the_tour_has_curl_calls() -> None:
    calls = curl_calls(readme())
    assert len(calls) >= 10, f"expected the README's curl tour, found {calls}"
    assert {m for m, _ in calls} >= {"GET", "POST"}


def test_every_v1_call_in_the_readme_exists_in_the_openapi_document() -> None:
    text = readme()
    operations = openapi_operations()
    calls = curl_calls(text) + [(m, p) for m, p in PROSE_CALL.findall(text)]
    missing = []
    for method, path in calls:
        template = matching_template(to_concrete(path), operations)
        if template is None:
            missing.append(f"{method} {path}: no such path")
        elif method not in operations[template]:
            missing.append(f"{method} {path}: {template} only allows {sorted(operations[template])}")
    assert not missing, "README.md calls operations the API does not have:\n" + "\n".join(missing)


def test_every_v1_path_mentioned_anywhere_exists() -> None:
    operations = openapi_operations()
    paths = {to_concrete(p) for p in V1_PATH.findall(readme())}
    unknown = sorted(p for p in paths if matching_template(p, operations) is None)
    assert not unknown, f"README.md mentions /v1 paths the API does not have: {unknown}"


@pytest.mark.parametrize(
    ("segment", "expected"),
    [
        ('curl -s $B/v1/plans -H "$AUTH"   # all plans', [("GET", "/v1/plans")]),
        ("curl -s -X POST $B/v1/subscriptions/$S/cancel", [("POST", "/v1/subscriptions/$S/cancel")]),
        ('curl -s "$B/v1/events?aggregate=$SUB2" -H x', [("GET", "/v1/events")]),
        ('curl -s $B/v1/customers --json \'{"name": "A"}\'', [("POST", "/v1/customers")]),
    ],
)
def test_curl_parsing(segment: str, expected: list[tuple[str, str]]) -> None:
    assert _curl_call(segment) == expected
