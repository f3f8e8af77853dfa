"""Dunning: retry schedules, escalation, suspension (see README.md)."""
