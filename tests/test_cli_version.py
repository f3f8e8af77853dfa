"""`tiergate --version` prints the installed version (issue 9, rough edges)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from click.testing import CliRunner

from gateway.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _version() -> str:
    version: str = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_version_option_prints_the_package_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"tiergate {_version()}\n"


def test_the_installed_command_answers_version() -> None:
    command = Path(sys.executable).parent / "tiergate"
    done = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"tiergate {_version()}\n")
