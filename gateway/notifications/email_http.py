"""/v1/email_messages, /v1/email_suppressions, /v1/email_branding, /v1/customers/{id}/email_preferences,
/v1/email_templates."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from litestar import Controller, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from msgspec import Meta, Struct
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import i18n
from gateway.customers.models import Customer
from gateway.kernel.auth import Principal
from gateway.kernel.clock import Clock
from gateway.kernel.errors import NotFound, ValidationFailed
from gateway.kernel.ids import new_id
from gateway.notifications.email_models import (
    EmailBranding,
    EmailMessage,
    EmailPreference,
    EmailSuppression,
)
from gateway.notifications.email_render import TEMPLATES, render
from gateway.notifications.email_service import PLATFORM_SCOPE, brand_for, resend_message
from gateway.web.problems import ERROR_RESPONSES

READ = {"scope": "email:read"}
WRITE = {"scope": "email:write"}

Address = Annotated[str, Meta(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Color = Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$", max_length=7)]
LogoUrl = Annotated[str, Meta(min_length=9, max_length=2048, pattern=r"^https:/{2}\S+$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
TemplateName = Annotated[str, Meta(min_length=1, max_length=60)]


class TemplateNotFound(NotFound):
    code = "email_template_not_found"


class SuppressionNotFound(NotFound):
    code = "email_suppression_not_found"


class MessageNotFound(NotFound):
    code = "email_message_not_found"


class Message(Struct):
    """What was sent to whom: the log row without the raw message (it may carry an invoice PDF)."""

    id: str
    object: Literal["email_message"]
    customer: str | None
    event_type: str
    template: str
    recipient: str
    locale: str
    subject: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, row: EmailMessage) -> Message:
        return cls(
            row.id,
            "email_message",
            row.tenant_id,
            row.event_type,
            row.template,
            row.recipient,
            row.locale,
            row.subject,
            row.status,
            row.attempts,
            row.last_error,
            row.next_attempt_at,
            row.sent_at,
            row.created_at,
        )


class MessageList(Struct):
    data: list[Message]
    has_more: bool
    next_cursor: str | None
    object: Literal["list"] = "list"


MessageStatus = Literal["pending", "sent", "failed", "suppressed", "unknown"]


class SuppressionCreate(Struct, forbid_unknown_fields=True):
    address: Address
    reason: Literal["bounce", "complaint", "manual"] = "bounce"


class Suppression(Struct):
    id: str
    object: Literal["email_suppression"]
    customer: str | None
    address: str
    reason: str
    created_at: datetime

    @classmethod
    def of(cls, row: EmailSuppression) -> Suppression:
        return cls(row.id, "email_suppression", row.tenant_id, row.address, row.reason, row.created_at)


class SuppressionList(Struct):
    data: list[Suppression]
    object: Literal["list"] = "list"


class BrandingUpdate(Struct, forbid_unknown_fields=True):
    name: Name | None = None
    logo_url: LogoUrl | None = None
    color: Color | None = None
    reply_to: Address | None = None


class Branding(Struct):
    object: Literal["email_branding"]
    customer: str | None
    name: str
    logo_url: str | None
    color: str
    reply_to: str | None


class PreferencesUpdate(Struct, forbid_unknown_fields=True):
    opted_out: Annotated[list[TemplateName], Meta(max_length=20)]


class Preferences(Struct):
    object: Literal["email_preferences"]
    customer: str
    opted_out: list[str]


class TemplateInfo(Struct):
    name: str
    essential: bool
    attachments: list[str]


class TemplateList(Struct):
    data: list[TemplateInfo]
    object: Literal["list"] = "list"


class Preview(Struct):
    object: Literal["email_preview"]
    name: str
    locale: str
    subject: str
    text: str
    html: str


def _scope(principal: Principal) -> str:
    return principal.tenant_id or PLATFORM_SCOPE


class EmailMessageController(Controller):
    """The message log. A tenant key sees its own customer's messages only (another's read as missing)."""

    path = "/email_messages"
    tags = ["email"]

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List sent and queued e-mails, newest first")
    async def list_(
        self,
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        customer: Annotated[str | None, QueryParameter(name="customer", max_length=40)] = None,
        status: Annotated[MessageStatus | None, QueryParameter(name="status")] = None,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100)] = 20,
        starting_after: Annotated[str | None, QueryParameter(name="starting_after", max_length=40)] = None,
    ) -> MessageList:
        query = select(EmailMessage).order_by(EmailMessage.id.desc()).limit(limit + 1)
        if principal.tenant_id:
            query = query.where(EmailMessage.tenant_id == principal.tenant_id)
        if customer is not None:
            query = query.where(EmailMessage.tenant_id == customer)
        if status is not None:
            query = query.where(EmailMessage.status == status)
        if starting_after is not None:
            # ids are time-ordered (ULIDs): older than the cursor is further down the list.
            query = query.where(EmailMessage.id < starting_after)
        rows = list((await session.scalars(query)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        return MessageList([Message.of(r) for r in rows], more, rows[-1].id if more else None)

    @get("/{message_id:str}", opt=READ, responses=ERROR_RESPONSES, summary="Retrieve one e-mail's log entry")
    async def retrieve(
        self,
        message_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> Message:
        row = await session.get(EmailMessage, message_id[:40])
        if row is None or (principal.tenant_id and row.tenant_id != principal.tenant_id):
            raise MessageNotFound(f"no e-mail message {message_id!r}")
        return Message.of(row)

    @post(
        "/{message_id:str}/resend",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Send a sent or failed e-mail again (a copy with a new Message-ID, queued now)",
    )
    async def resend(
        self,
        message_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> Message:
        row = await session.get(EmailMessage, message_id[:40])
        if row is None or (principal.tenant_id and row.tenant_id != principal.tenant_id):
            raise MessageNotFound(f"no e-mail message {message_id!r}")
        return Message.of(await resend_message(session, clock, row))


class EmailSuppressionController(Controller):
    path = "/email_suppressions"
    tags = ["email"]

    @post(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Report a bounce or complaint: nothing is sent to the address",
    )
    async def create(
        self,
        data: JSONBody[SuppressionCreate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> Suppression:
        address = data.address.strip().lower()
        query = select(EmailSuppression).where(EmailSuppression.address == address)
        query = query.where(
            EmailSuppression.tenant_id == principal.tenant_id
            if principal.tenant_id
            else EmailSuppression.tenant_id.is_(None)
        )
        row = (await session.scalars(query)).first()
        if row is None:
            row = EmailSuppression(
                id=new_id("esup"),
                tenant_id=principal.tenant_id,
                address=address,
                reason=data.reason,
                created_at=clock.now(),
            )
            session.add(row)
            await session.flush()
        return Suppression.of(row)

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="List suppressed addresses")
    async def list_(
        self, session: NamedDependency[AsyncSession], principal: NamedDependency[Principal]
    ) -> SuppressionList:
        query = select(EmailSuppression).order_by(EmailSuppression.address, EmailSuppression.id).limit(1000)
        if principal.tenant_id:
            query = query.where(EmailSuppression.tenant_id == principal.tenant_id)
        return SuppressionList([Suppression.of(r) for r in (await session.scalars(query)).all()])

    @delete(
        "/{address:str}",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        status_code=200,
        summary="Clear a suppressed address (mails go to it again)",
    )
    async def delete_(
        self,
        address: FromPath[str],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> Suppression:
        query = select(EmailSuppression).where(EmailSuppression.address == address.strip().lower()[:320])
        query = query.where(
            EmailSuppression.tenant_id == principal.tenant_id
            if principal.tenant_id
            else EmailSuppression.tenant_id.is_(None)
        )
        row = (await session.scalars(query)).first()
        if row is None:
            raise SuppressionNotFound(f"{address!r} is not suppressed")
        await session.delete(row)
        await session.flush()
        return Suppression.of(row)


class EmailBrandingController(Controller):
    path = "/email_branding"
    tags = ["email"]

    @get(
        "/",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="The branding of e-mails (this tenant's, else the platform's)",
    )
    async def retrieve(
        self, session: NamedDependency[AsyncSession], principal: NamedDependency[Principal], state: State
    ) -> Branding:
        brand = await brand_for(session, principal.tenant_id, state.settings.issuer_name)
        return Branding(
            "email_branding", principal.tenant_id, brand.name, brand.logo_url, brand.color, brand.reply_to
        )

    @put(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Set the branding of e-mails (name, logo, colour, reply-to)",
    )
    async def update(
        self,
        data: JSONBody[BrandingUpdate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
        state: State,
    ) -> Branding:
        scope = _scope(principal)
        row = await session.get(EmailBranding, scope)
        if row is None:
            row = EmailBranding(scope=scope, tenant_id=principal.tenant_id, updated_at=clock.now())
            session.add(row)
        row.name, row.logo_url, row.color, row.reply_to = data.name, data.logo_url, data.color, data.reply_to
        row.updated_at = clock.now()
        await session.flush()
        brand = await brand_for(session, principal.tenant_id, state.settings.issuer_name)
        return Branding(
            "email_branding", principal.tenant_id, brand.name, brand.logo_url, brand.color, brand.reply_to
        )


async def _customer(session: AsyncSession, customer_id: str, principal: Principal) -> Customer:
    customer = await session.get(Customer, customer_id[:40])
    if customer is None or (principal.tenant_id and customer.id != principal.tenant_id):
        raise NotFound(f"no customer {customer_id!r}")
    return customer


class EmailPreferencesController(Controller):
    path = "/customers/{customer_id:str}/email_preferences"
    tags = ["email"]

    @get(
        "/",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="Which non-essential e-mails a customer opted out of",
    )
    async def retrieve(
        self,
        customer_id: FromPath[str],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
    ) -> Preferences:
        customer = await _customer(session, customer_id, principal)
        row = await session.get(EmailPreference, customer.id)
        return Preferences("email_preferences", customer.id, list(row.opted_out) if row else [])

    @put(
        "/",
        opt=WRITE,
        responses=ERROR_RESPONSES,
        summary="Opt a customer out of non-essential e-mails (transactional ones always go)",
    )
    async def update(
        self,
        customer_id: FromPath[str],
        data: JSONBody[PreferencesUpdate],
        session: NamedDependency[AsyncSession],
        clock: NamedDependency[Clock],
        principal: NamedDependency[Principal],
    ) -> Preferences:
        customer = await _customer(session, customer_id, principal)
        bad = [n for n in data.opted_out if n not in TEMPLATES or TEMPLATES[n].essential]
        if bad:
            optional = sorted(n for n, s in TEMPLATES.items() if not s.essential)
            raise ValidationFailed(f"not optional e-mails: {bad}; choose from {optional}", field="opted_out")
        row = await session.get(EmailPreference, customer.id)
        if row is None:
            row = EmailPreference(tenant_id=customer.id, opted_out=[], updated_at=clock.now())
            session.add(row)
        row.opted_out = sorted(set(data.opted_out))
        row.updated_at = clock.now()
        await session.flush()
        return Preferences("email_preferences", customer.id, list(row.opted_out))


class EmailTemplateController(Controller):
    path = "/email_templates"
    tags = ["email"]

    @get("/", opt=READ, responses=ERROR_RESPONSES, summary="The e-mail templates")
    async def list_(self) -> TemplateList:
        return TemplateList(
            [
                TemplateInfo(s.name, s.essential, ["invoice.pdf"] if s.attach_invoice_pdf else [])
                for s in TEMPLATES.values()
            ]
        )

    @get(
        "/{name:str}/preview",
        opt=READ,
        responses=ERROR_RESPONSES,
        summary="Render a template for a sample object, in a locale, with the caller's branding",
    )
    async def preview(
        self,
        name: FromPath[str],
        session: NamedDependency[AsyncSession],
        principal: NamedDependency[Principal],
        state: State,
        locale: Annotated[str, QueryParameter(name="locale", max_length=20)] = "en",
    ) -> Preview:
        if name not in TEMPLATES:
            raise TemplateNotFound(f"no e-mail template {name[:60]!r}")
        try:
            normalized = i18n.normalize_locale(locale)
        except i18n.UnsupportedLocale as exc:
            raise ValidationFailed(str(exc), field="locale") from exc
        brand = await brand_for(session, principal.tenant_id, state.settings.issuer_name)
        out = render(name, {}, normalized, brand)
        return Preview("email_preview", name, normalized, out.subject, out.text, out.html)


CONTROLLERS = [
    EmailMessageController,
    EmailSuppressionController,
    EmailBrandingController,
    EmailPreferencesController,
    EmailTemplateController,
]
