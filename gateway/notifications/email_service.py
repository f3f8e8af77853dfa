"""E-mail to customers, driven by the outbox.

1. **Queue** (relay consumer `email`, in the relay's transaction with its receipt): an event that makes a
   mail (`EVENT_TEMPLATES`, or `dunning.email_requested` naming its template) becomes one
   `email_messages` row per recipient, the whole message rendered once (HTML + text, the invoice PDF
   attached, in the customer's locale, with the tenant's branding). (event id, recipient) is unique, so
   a re-relayed event queues nothing new. Recipients: the customer's billing e-mail and its members with
   a billing role (`mail_billing_roles`). Non-essential templates a customer opted out of are recorded
   `skipped` (`opted_out`).
2. **Send** (job `mail`): claim due rows and mark them handed over (commit) → send with no transaction
   open → record the outcome (commit). A suppressed address is never sent to: the row becomes
   `suppressed` with the reason. A refused attempt is retried after `mail_backoff_seconds × 2^(n-1)`
   (capped) until `mail_max_attempts`, then `failed`.
   **A crash never sends twice**: a row still marked handed over when its lease runs out may have been
   sent (the crash came between the send and the record), so it becomes `unknown` and is not sent
   again; the window in which it was claimed but not yet handed to the transport is a few instructions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_string
from email import policy as email_policy
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import i18n
from gateway.billing.models import Invoice, InvoiceLine
from gateway.billing.render import render_pdf
from gateway.billing.rendering import document_of
from gateway.billing.service import Issuer
from gateway.customers.models import Customer, Membership, User
from gateway.db.outbox import OutboxEvent
from gateway.db.session import Database
from gateway.dunning.service import is_dunned
from gateway.kernel.clock import Clock
from gateway.kernel.errors import Conflict
from gateway.kernel.ids import new_id
from gateway.notifications.email_models import EmailBranding, EmailMessage, EmailPreference, EmailSuppression
from gateway.notifications.email_render import TEMPLATES, Brand, render
from gateway.notifications.email_transport import MailSendError, MailTransport
from gateway.security.secretbox import SecretBox, column_context

log = logging.getLogger("tiergate.mail")

PLATFORM_SCOPE = "platform"
# Where a mail's button leads: the portal's overview, at its invoices or its payment methods.
INVOICES = "/portal#invoices-heading"
PAYMENT_METHODS = "/portal#methods-heading"

EVENT_TEMPLATES: dict[str, str] = {
    "invoice.finalized": "invoice_finalized",
    "payment.succeeded": "payment_receipt",
    "payment.failed": "payment_failed",
    "payment.action_required": "payment_action_required",
    "payment.requires_action": "payment_action_required",
    "subscription.trial_will_end": "trial_will_end",
    "payment_method.expiring": "card_expiring",
    "subscription.canceled": "subscription_canceled",
    "subscription.paused": "subscription_paused",
    "subscription.resumed": "subscription_resumed",
    "usage.threshold_reached": "usage_threshold",
}
DUNNING_EVENT = "dunning.email_requested"
DUNNING_TEMPLATES = frozenset(
    {
        "payment_failed",
        "payment_action_required",
        "dunning_final_notice",
        "subscription_past_due",
        "subscription_canceled",
        "subscription_paused",
    }
)


# The portal's e-mailed sign-in code (gateway/portal/login.py). The event carries the code sealed by the
# secret box (bound to the code's row id), because the portal keeps only its HMAC and the mail must say it.
LOGIN_CODE_EVENT = "portal_login.code_requested"
LOGIN_CODE_TEMPLATE = "portal_login_code"
# Mails whose content is a one-time secret: once sent (or given up), the stored copy is blanked and they
# are never resent (a resent code would be dead anyway; a stored live one is a credential lying around).
ONE_TIME_TEMPLATES = frozenset({LOGIN_CODE_TEMPLATE})


def login_code_context(login_id: str) -> str:
    """What a login code sealed into its outbox event is bound to: its own row, nothing else."""
    return column_context("portal_login_codes", "code", login_id)


def wants_email(type_: str) -> bool:
    return type_ in EVENT_TEMPLATES or type_ in (DUNNING_EVENT, LOGIN_CODE_EVENT)


@dataclass(frozen=True, slots=True)
class MailConfig:
    sender: str = "Tiergate <billing@tiergate.localhost>"
    link_base_url: str = "http://127.0.0.1:8000"
    billing_roles: tuple[str, ...] = ("owner", "billing")
    max_attempts: int = 6
    backoff_seconds: float = 60.0
    max_backoff_seconds: float = 21600.0
    timeout_seconds: float = 10.0
    batch: int = 50
    issuer: Issuer = field(default_factory=Issuer)

    @classmethod
    def from_settings(cls, settings: Any, issuer: Issuer | None = None) -> MailConfig:
        return cls(
            sender=settings.mail_from,
            link_base_url=(settings.mail_link_base_url or settings.public_url).rstrip("/"),
            billing_roles=tuple(settings.mail_billing_roles),
            max_attempts=settings.mail_max_attempts,
            backoff_seconds=settings.mail_backoff_seconds,
            max_backoff_seconds=settings.mail_max_backoff_seconds,
            timeout_seconds=settings.mail_timeout_seconds,
            issuer=issuer or Issuer(name=settings.issuer_name),
        )

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.backoff_seconds * 2 ** (attempts - 1), self.max_backoff_seconds))

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.timeout_seconds * 3 + 30)


def customer_locale(customer: Customer | None) -> str:
    """The customer's language for mails: `preferred_locale` when set and supported, else English."""
    value = customer.preferred_locale if customer is not None else None
    if not value:
        return i18n.DEFAULT_LOCALE
    try:
        return i18n.normalize_locale(str(value))
    except i18n.UnsupportedLocale:
        return i18n.DEFAULT_LOCALE


async def brand_for(session: AsyncSession, tenant_id: str | None, default_name: str) -> Brand:
    rows = {
        r.scope: r
        for r in (
            await session.scalars(
                select(EmailBranding).where(
                    EmailBranding.scope.in_([PLATFORM_SCOPE, *([tenant_id] if tenant_id else [])])
                )
            )
        ).all()
    }
    base, own = rows.get(PLATFORM_SCOPE), rows.get(tenant_id or "")
    default = Brand(name=default_name)

    def pick(attr: str) -> Any:
        for row in (own, base):
            if row is not None and getattr(row, attr):
                return getattr(row, attr)
        return getattr(default, attr)

    return Brand(name=pick("name"), logo_url=pick("logo_url"), color=pick("color"), reply_to=pick("reply_to"))


async def suppression_of(
    session: AsyncSession, tenant_id: str | None, address: str
) -> EmailSuppression | None:
    query = select(EmailSuppression).where(EmailSuppression.address == address.lower())
    query = query.where(
        or_(EmailSuppression.tenant_id.is_(None), EmailSuppression.tenant_id == tenant_id)
        if tenant_id
        else EmailSuppression.tenant_id.is_(None)
    )
    return (await session.scalars(query.limit(1))).first()


RESENDABLE = ("sent", "failed", "unknown")


async def resend_message(session: AsyncSession, clock: Clock, original: EmailMessage) -> EmailMessage:
    """Queue a copy of a sent or failed message (support's "resend the invoice"): the same content, a new
    Message-ID and Date, a row of its own (its `event_id` is the copy's id, so the original's
    once-per-recipient guarantee is untouched). A message still queued, skipped, or to an address now
    suppressed, or a one-time sign-in code, is refused (409)."""
    if original.template in ONE_TIME_TEMPLATES:
        raise Conflict(
            "a one-time sign-in code is not resent: its stored copy is gone and the code is used or "
            "expired; the customer asks for a new one",
            code="email_not_resendable",
        )
    if original.status not in RESENDABLE:
        raise Conflict(
            f"an e-mail that is {original.status} cannot be resent; only {', '.join(RESENDABLE)} ones",
            code="email_not_resendable",
        )
    if await suppression_of(session, original.tenant_id, original.recipient) is not None:
        raise Conflict(
            f"{original.recipient} is suppressed (bounced or complained); clear it first",
            code="email_suppressed",
        )
    now = clock.now()
    row_id = new_id("em")
    mime = message_from_string(original.raw, policy=email_policy.default)
    del mime["Message-ID"]
    del mime["Date"]
    mime["Message-ID"] = f"<{row_id}@tiergate.mail>"
    mime["Date"] = format_datetime(now)
    copy = EmailMessage(
        id=row_id,
        tenant_id=original.tenant_id,
        event_id=row_id,
        event_type=original.event_type,
        template=original.template,
        recipient=original.recipient,
        locale=original.locale,
        subject=original.subject,
        raw=mime.as_string(),
        status="pending",
        attempts=0,
        next_attempt_at=now,
        last_error=None,
        created_at=now,
    )
    session.add(copy)
    await session.flush()
    return copy


async def _dunning_speaks(session: AsyncSession, data: dict[str, Any]) -> bool:
    """Whether the failed payment's invoice is one dunning retries (gateway/dunning.service.is_dunned):
    its campaign decides which failures mail the customer."""
    invoice_id = (data.get("payment") or {}).get("invoice")
    if not invoice_id:
        return False
    invoice = await session.get(Invoice, invoice_id)
    return invoice is not None and is_dunned(invoice)


class EmailQueuer:
    """The relay consumer: outbox event → rendered messages, one row per recipient."""

    def __init__(self, clock: Clock, config: MailConfig, box: SecretBox | None = None) -> None:
        self.clock = clock
        self.config = config
        self.box = box  # opens the sealed sign-in codes; without it none is mailed

    async def handle(self, session: AsyncSession, event: OutboxEvent) -> None:
        data = event.data or {}
        if event.type == LOGIN_CODE_EVENT:
            await self._login_code(session, event, data)
            return
        if event.type == DUNNING_EVENT:
            template = str(data.get("template", ""))
            if template not in DUNNING_TEMPLATES:
                log.warning("dunning e-mail %s: unknown template %r skipped", event.event_id, template)
                return
            tenant_id = data.get("customer_id") or event.tenant_id
        else:
            template = EVENT_TEMPLATES[event.type]
            tenant_id = event.tenant_id
            if event.type == "payment.failed" and await _dunning_speaks(session, data):
                return  # the campaign's steps send it (dunning.email_requested): one mail, not two
        if not tenant_id:
            return
        customer = await session.get(Customer, tenant_id)
        if customer is None:
            return
        context = await self._context(session, event, template, data)
        if context is None:
            return
        spec = TEMPLATES[template]
        recipients = await self.recipients(session, customer)
        if not recipients:
            return
        opted_out = False
        if not spec.essential:
            pref = await session.get(EmailPreference, tenant_id)
            opted_out = pref is not None and template in (pref.opted_out or [])
        locale = customer_locale(customer)
        brand = await brand_for(session, tenant_id, self.config.issuer.name)
        rendered = render(template, context, locale, brand)
        attachment = await self._pdf(session, context.get("_invoice_id")) if spec.attach_invoice_pdf else None
        now = self.clock.now()
        existing = set(
            (
                await session.scalars(
                    select(EmailMessage.recipient).where(EmailMessage.event_id == event.event_id)
                )
            ).all()
        )
        for address in recipients:
            if address in existing:
                continue
            row_id = new_id("em")
            mime = self._mime(row_id, address, rendered, brand, locale, now, attachment)
            session.add(
                EmailMessage(
                    id=row_id,
                    tenant_id=tenant_id,
                    event_id=event.event_id,
                    event_type=event.type,
                    template=template,
                    recipient=address,
                    locale=locale,
                    subject=rendered.subject[:500],
                    raw=mime.as_string(),
                    status="skipped" if opted_out else "pending",
                    attempts=0,
                    next_attempt_at=None if opted_out else now,
                    last_error="opted_out" if opted_out else None,
                    created_at=now,
                )
            )
        await session.flush()

    async def _login_code(self, session: AsyncSession, event: OutboxEvent, data: dict[str, Any]) -> None:
        """One mail, to the address the code was asked for only (not the customers' billing members: the
        code signs in whoever holds that address), in the language of the customer it names."""
        address = str(data.get("email") or "").strip().lower()
        expires_at = datetime.fromisoformat(str(data.get("expires_at")))
        if not address or expires_at <= self.clock.now():
            return  # ran out before the relay got to it: a dead code is not worth a mail
        if self.box is None:
            log.warning("sign-in code %s: no secret box to open it; not mailed", event.aggregate_id)
            return
        already = await session.scalar(
            select(EmailMessage.id).where(
                EmailMessage.event_id == event.event_id, EmailMessage.recipient == address
            )
        )
        if already is not None:
            return
        code = self.box.open(str(data.get("code") or ""), context=login_code_context(event.aggregate_id))
        customer = await session.get(Customer, event.tenant_id) if event.tenant_id else None
        locale = customer_locale(customer)
        brand = await brand_for(session, event.tenant_id, self.config.issuer.name)
        minutes = int(data.get("minutes") or 10)
        rendered = render(LOGIN_CODE_TEMPLATE, {"code": code, "minutes": minutes}, locale, brand)
        now = self.clock.now()
        row_id = new_id("em")
        session.add(
            EmailMessage(
                id=row_id,
                tenant_id=event.tenant_id,
                event_id=event.event_id,
                event_type=event.type,
                template=LOGIN_CODE_TEMPLATE,
                recipient=address,
                locale=locale,
                subject=rendered.subject[:500],
                raw=self._mime(row_id, address, rendered, brand, locale, now, None).as_string(),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                last_error=None,
                created_at=now,
            )
        )
        await session.flush()

    async def recipients(self, session: AsyncSession, customer: Customer) -> list[str]:
        found: list[str] = []
        if customer.email:
            found.append(customer.email.strip().lower())
        query = (
            select(User.email)
            .join(Membership, Membership.user_id == User.id)
            .where(
                Membership.tenant_id == customer.id,
                Membership.status == "active",
                Membership.role.in_(self.config.billing_roles),
            )
            .order_by(User.email)
        )
        for email in (await session.scalars(query)).all():
            address = email.strip().lower()
            if address not in found:
                found.append(address)
        return found

    def _link(self, path: str) -> str:
        """A page of the customer portal. Opened without a portal session, it asks the reader to sign in
        with their organisation's SSO, with a code mailed to the billing address (back to this page), or
        to open Billing from the app again (a bearer link in an e-mail that anyone it is forwarded to
        could use is what this avoids)."""
        return f"{self.config.link_base_url}{path}"

    async def _context(
        self, session: AsyncSession, event: OutboxEvent, template: str, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        if event.type == DUNNING_EVENT:
            return {
                "amount": int(data.get("amount_due") or 0),
                "currency": str(data.get("currency") or "USD"),
                "link": str(data.get("hosted_url") or self._link(PAYMENT_METHODS)),
                "next_attempt_at": data.get("next_attempt_at"),
                "invoice_number": await self._invoice_number(session, data.get("invoice_id")),
            }
        if template == "invoice_finalized":
            inv = data.get("invoice") or {}
            return {
                "_invoice_id": inv.get("id"),
                "invoice_number": inv.get("number") or "",
                "total": int(inv.get("total") or 0),
                "amount_due": int(inv.get("amount_remaining", inv.get("amount_due")) or 0),
                "currency": str(inv.get("currency") or "USD"),
                "due_date": inv.get("due_date"),
                "link": self._link(INVOICES),
            }
        if event.type.startswith("payment."):
            pay = data.get("payment") or {}
            ctx: dict[str, Any] = {
                "amount": int(pay.get("amount") or 0),
                "currency": str(pay.get("currency") or "USD"),
            }
            if template == "payment_receipt":
                ctx["paid_at"] = pay.get("settled") or event.occurred_at
                ctx["invoice_number"] = await self._invoice_number(session, pay.get("invoice"))
            elif template == "payment_failed":
                ctx["link"] = self._link(PAYMENT_METHODS)
                ctx["next_attempt_at"] = None
                ctx["invoice_number"] = await self._invoice_number(session, pay.get("invoice"))
            else:
                link = data.get("action_url") or pay.get("action_url")
                if not link:
                    return None  # nothing the customer could click
                ctx["link"] = str(link)
            return ctx
        if template == "trial_will_end":
            sub = data.get("subscription") or {}
            if not sub.get("trial_end"):
                return None
            return {"trial_end": sub["trial_end"], "link": self._link(PAYMENT_METHODS)}
        if template == "card_expiring":
            method = data.get("payment_method") or {}
            return {
                "brand_name": method.get("brand") or "",
                "last4": method.get("last4") or "",
                "exp_month": method.get("exp_month") or "",
                "exp_year": method.get("exp_year") or "",
                "link": self._link(PAYMENT_METHODS),
            }
        if template == "usage_threshold":
            return {
                "feature": str(data.get("feature") or ""),
                "threshold": int(data.get("threshold") or 0),
                "used": int(data.get("used") or 0),
                "allowance": int(data.get("allowance") or 0),
            }
        return {"link": self._link(PAYMENT_METHODS)}

    async def _invoice_number(self, session: AsyncSession, invoice_id: Any) -> str | None:
        if not invoice_id:
            return None
        invoice = await session.get(Invoice, str(invoice_id))
        return invoice.number if invoice is not None else None

    async def _pdf(self, session: AsyncSession, invoice_id: Any) -> tuple[str, bytes] | None:
        if not invoice_id:
            return None
        invoice = await session.get(Invoice, str(invoice_id))
        customer = await session.get(Customer, invoice.tenant_id) if invoice is not None else None
        if invoice is None or customer is None:
            return None
        lines = (
            await session.scalars(
                select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.position)
            )
        ).all()
        pdf = render_pdf(document_of(invoice, lines, customer, self.config.issuer))
        return f"{invoice.number or invoice.id}.pdf", pdf

    def _mime(
        self,
        row_id: str,
        address: str,
        rendered: Any,
        brand: Brand,
        locale: str,
        now: datetime,
        attachment: tuple[str, bytes] | None,
    ) -> MimeMessage:
        mime = MimeMessage()
        mime["Subject"] = rendered.subject
        mime["From"] = formataddr((brand.name, parseaddr(self.config.sender)[1]))
        mime["To"] = address
        if brand.reply_to:
            mime["Reply-To"] = brand.reply_to
        mime["Date"] = format_datetime(now)
        mime["Message-ID"] = f"<{row_id}@tiergate.mail>"
        mime.set_content(rendered.text)
        mime.add_alternative(rendered.html, subtype="html")
        if attachment is not None:
            mime.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
        # After the parts: making a message multipart moves its Content-* headers into the first part.
        mime["Content-Language"] = i18n.language_of(locale)
        return mime


@dataclass(frozen=True, slots=True)
class _Job:
    id: str
    recipient: str
    raw: bytes


class EmailSender:
    """Job `mail`: one attempt at every due message (claim → commit → send → record)."""

    def __init__(self, db: Database, clock: Clock, transport: MailTransport, config: MailConfig) -> None:
        self.db = db
        self.clock = clock
        self.transport = transport
        self.config = config

    async def deliver_due(self) -> int:
        now = self.clock.now()
        jobs = await self._claim(now)
        if not jobs:
            return 0
        outcomes = await asyncio.gather(*(self._send(job) for job in jobs))
        await self.record(jobs, outcomes, now)
        return len(jobs)

    async def _claim(self, now: datetime) -> list[_Job]:
        async with self.db.unit_of_work() as session:
            # Handed over and never recorded: the process died between sending and recording. It may
            # have been sent, so it is not sent again.
            stale = await session.scalars(
                select(EmailMessage)
                .where(
                    EmailMessage.status == "pending",
                    EmailMessage.handed_over_at.is_not(None),
                    EmailMessage.next_attempt_at <= now,
                )
                .with_for_update(skip_locked=True)
            )
            for row in stale.all():
                row.status, row.last_error, row.next_attempt_at = "unknown", "outcome_unknown", None
                log.warning("e-mail %s: outcome unknown after a crash; not sent again", row.id)
            rows = (
                await session.scalars(
                    select(EmailMessage)
                    .where(
                        EmailMessage.status == "pending",
                        EmailMessage.handed_over_at.is_(None),
                        EmailMessage.next_attempt_at <= now,
                    )
                    .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
                    .limit(self.config.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            jobs = []
            for row in rows:
                suppressed = await suppression_of(session, row.tenant_id, row.recipient)
                if suppressed is not None:
                    row.status, row.next_attempt_at = "suppressed", None
                    row.last_error = f"suppressed:{suppressed.reason}"
                    continue
                row.handed_over_at = now
                row.next_attempt_at = now + self.config.lease
                jobs.append(_Job(row.id, row.recipient, row.raw.encode()))
        return jobs

    async def _send(self, job: _Job) -> str | None:
        try:
            await self.transport.send(job.id, job.raw, self.config.sender, [job.recipient])
        except MailSendError as exc:
            log.info("e-mail %s not accepted: %s", job.id, exc.failure)
            return exc.failure
        except Exception:
            log.exception("e-mail %s: transport error", job.id)
            return "transport_error"
        return None

    async def record(self, jobs: Sequence[_Job], outcomes: Sequence[str | None], now: datetime) -> None:
        async with self.db.unit_of_work() as session:
            for job, error in zip(jobs, outcomes, strict=True):
                row = await session.get(EmailMessage, job.id)
                if row is None:
                    continue
                row.attempts += 1
                row.handed_over_at = None
                row.last_error = error
                if error is None:
                    row.status, row.sent_at, row.next_attempt_at = "sent", now, None
                elif row.attempts >= self.config.max_attempts:
                    row.status, row.next_attempt_at = "failed", None
                else:
                    row.next_attempt_at = now + self.config.delay(row.attempts)
                if row.template in ONE_TIME_TEMPLATES and row.status != "pending":
                    row.raw = ""  # the code it carried is not kept once the mail is out of our hands
