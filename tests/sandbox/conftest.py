"""The sandbox served over HTTP, an account on it and its webhook receiver (harness.py)."""

from tests.sandbox.harness import sandbox

__all__ = ["sandbox"]
