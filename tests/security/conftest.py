"""Fixtures for the security tests: replicas served in the test's event loop (`tests/served.py`)."""

from tests.served import replica, served_api

__all__ = ["replica", "served_api"]
