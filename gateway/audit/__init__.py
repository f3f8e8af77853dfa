"""Audit log: who did what, when, to whom. Public: `AuditService`, `record`, `SYSTEM`."""

from gateway.audit.service import SYSTEM, AuditService, record

__all__ = ["SYSTEM", "AuditService", "record"]
