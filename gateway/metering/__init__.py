"""Usage metering: meters, idempotent event ingestion, usage queries (see README.md)."""
