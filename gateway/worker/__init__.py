"""Job wiring: the in-process scheduler (embedded mode) and, later, saq workers (production)."""
