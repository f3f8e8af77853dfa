"""E-mail templates: which exist, what each needs, and rendering them (HTML + plain text) in a locale.

Templates are Jinja2 files under `templates/email/` (`<name>.html` and `<name>.txt`, both extending a
branded base), autoescaped in HTML. Every text goes through gateway.i18n (the `notifications`
catalogs); money and dates through Babel in the recipient's locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from gateway import i18n

PACKAGE = "notifications"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates" / "email"


def _(message: str) -> str:
    """Marks a message for the catalogs; it is translated when rendered."""
    return message


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    name: str
    subject: str  # msgid, with %(...)s placeholders from the context
    essential: bool  # transactional: sent whatever the customer's preferences
    sample: dict[str, Any]
    attach_invoice_pdf: bool = False


_WHEN = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
_LINK = "https://billing.example/portal/payment_methods"

TEMPLATES: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        TemplateSpec(
            "invoice_finalized",
            _("Invoice %(number)s from %(brand)s"),
            True,
            {
                "invoice_number": "TG-2026-0042",
                "total": 3509,
                "amount_due": 3509,
                "currency": "EUR",
                "due_date": _WHEN,
                "link": "https://billing.example/portal/invoices",
            },
            attach_invoice_pdf=True,
        ),
        TemplateSpec(
            "payment_receipt",
            _("Receipt for your payment to %(brand)s"),
            True,
            {"amount": 3509, "currency": "EUR", "paid_at": _WHEN, "invoice_number": "TG-2026-0042"},
        ),
        TemplateSpec(
            "payment_failed",
            _("Your payment to %(brand)s failed"),
            True,
            {
                "amount": 3509,
                "currency": "EUR",
                "link": _LINK,
                "next_attempt_at": _WHEN,
                "invoice_number": None,
            },
        ),
        TemplateSpec(
            "payment_action_required",
            _("Confirm your payment to %(brand)s"),
            True,
            {"amount": 3509, "currency": "EUR", "link": "https://billing.example/3ds/confirm"},
        ),
        TemplateSpec(
            "trial_will_end",
            _("Your trial ends in 3 days"),
            False,
            {"trial_end": _WHEN, "link": _LINK},
        ),
        TemplateSpec(
            "card_expiring",
            _("Your card is about to expire"),
            False,
            {"brand_name": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2026, "link": _LINK},
        ),
        TemplateSpec(
            "dunning_final_notice",
            _("Final notice: your payment to %(brand)s is overdue"),
            True,
            {"amount": 3509, "currency": "EUR", "link": _LINK, "next_attempt_at": _WHEN},
        ),
        TemplateSpec(
            "subscription_past_due",
            _("Your subscription is past due"),
            True,
            {"amount": 3509, "currency": "EUR", "link": _LINK},
        ),
        TemplateSpec(
            "subscription_canceled", _("Your subscription has been canceled"), True, {"link": _LINK}
        ),
        TemplateSpec("subscription_paused", _("Your subscription has been paused"), False, {"link": _LINK}),
        TemplateSpec("subscription_resumed", _("Your subscription has been resumed"), False, {"link": _LINK}),
        TemplateSpec(
            "usage_threshold",
            _("You have used %(threshold)s%% of your %(feature)s allowance"),
            False,
            {"feature": "api_calls", "threshold": 80, "used": 8000, "allowance": 10000},
        ),
        # The portal's e-mailed sign-in code (gateway/portal/login.py): transactional, no link to follow.
        TemplateSpec(
            "portal_login_code", _("Your sign-in code for %(brand)s"), True, {"code": "123456", "minutes": 10}
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Brand:
    name: str = "Tiergate"
    logo_url: str | None = None
    color: str = "#1f6feb"
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=lambda name: bool(name and name.endswith(".html")),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=True,
    )


_ENV = _environment()


def _as_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def render(name: str, context: dict[str, Any], locale: str | None, brand: Brand) -> Rendered:
    spec = TEMPLATES[name]
    helpers = i18n.template_helpers(PACKAGE, locale)
    values = {**spec.sample, **context}
    for key in ("due_date", "paid_at", "next_attempt_at", "trial_end"):
        if key in values:
            values[key] = _as_date(values[key])
    ctx = {**values, **helpers, "brand": brand, "locale": i18n.language_of(locale)}
    subject = i18n.gettext(PACKAGE, locale, spec.subject, brand=brand.name, **_subject_params(values))
    return Rendered(
        subject=subject,
        text=_ENV.get_template(f"{name}.txt").render(ctx, subject=subject),
        html=_ENV.get_template(f"{name}.html").render(ctx, subject=subject),
    )


def _subject_params(values: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {k: values[k] for k in ("threshold", "feature") if k in values}
    if "invoice_number" in values:
        params["number"] = values["invoice_number"]
    return params
