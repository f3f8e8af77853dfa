"""Entitlements: the compiled decision index that answers permission checks on the hot path."""
