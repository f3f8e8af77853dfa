"""Payments: payment methods, collection, refunds, provider webhooks and reconciliation (see README.md)."""
