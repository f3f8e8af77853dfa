"""The tax-rate catalog. Platform data, not tenant-owned: every tenant is invoiced by the same issuer.
A rate's percentage and inclusiveness never change once created (a new rate replaces it), so an issued
invoice's tax always matches the rate it names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class TaxRate(Base):
    __tablename__ = "tax_rates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), index=True)
    # ISO 3166-2 subdivision code without the country prefix ("CA" for US-CA); NULL = the whole country.
    region: Mapped[str | None] = mapped_column(String(3))
    # WARNING: a Decimal as a string ("19", "8.875"); never a float column, never edited after creation.
    percent: Mapped[str] = mapped_column(String(12))
    inclusive: Mapped[bool] = mapped_column(Boolean, default=False)
    tax_type: Mapped[str] = mapped_column(String(30))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
