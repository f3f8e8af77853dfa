"""Dunning stories run on the payments kit (the fake provider) and a test clock."""

from tests.payments.conftest import fake_provider, kit, settings  # noqa: F401  (fixtures)
