"""What an invoice billed for a meter in one subscription period, so a late event can be billed as a
difference (an adjustment on the next invoice, or a credit note) instead of changing a finalised invoice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db.base import Base


class MeteredCharge(Base):
    """One line's worth: a metered price's usage of one group (`group_key` "" = the whole meter) over
    `[period_start, period_end)`. `billed_quantity` = `used` − `included` − `credited` (never below 0);
    `amount` is what the invoices charged for it so far (the first line plus any adjustments)."""

    __tablename__ = "metered_charges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("customers.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    price_id: Mapped[str] = mapped_column(ForeignKey("prices.id"))
    meter: Mapped[str] = mapped_column(String(100))
    group_key: Mapped[str] = mapped_column(String(400), default="")
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    currency: Mapped[str] = mapped_column(String(3))
    used: Mapped[int] = mapped_column(BigInteger)
    included: Mapped[int] = mapped_column(BigInteger)
    credited: Mapped[int] = mapped_column(BigInteger)
    billed_quantity: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("subscription_id", "price_id", "group_key", "period_start"),)
