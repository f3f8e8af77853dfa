"""Operator-side web pages: console and dashboard (WEB.md)."""
