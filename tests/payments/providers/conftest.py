"""Fixtures for the provider adapters' tests: the sandbox served over HTTP (tests/sandbox/harness.py)."""

from tests.sandbox.harness import sandbox

__all__ = ["sandbox"]
