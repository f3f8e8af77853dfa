"""Provisioning: lifecycle events → accounts provisioned, roles clamped, access revoked and restored;
privacy export/erasure; the job functions of the relay. Nothing imports this package but the
composition root."""
