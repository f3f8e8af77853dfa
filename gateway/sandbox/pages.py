"""The sandbox's hosted pages, rendered on the server: choosing a test method (setup session) and the
3-D Secure challenge. No script, no CDN; a language, a title, one heading each, labelled controls, and
colours with enough contrast (the browser tests run axe on them)."""

from __future__ import annotations

from html import escape
from typing import Any

from gateway.sandbox.methods import TEST_METHODS, methods_of_types

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #1d2330; }
main { max-width: 32rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       border: 1px solid #c9ced8; }
h1 { font-size: 1.5rem; margin-top: 0; }
p.note { color: #3d4554; }
fieldset { border: 1px solid #c9ced8; border-radius: 6px; padding: 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
.choice { display: block; padding: .35rem 0; }
.hint { color: #3d4554; font-size: .9rem; }
button { font-size: 1rem; padding: .6rem 1.2rem; border-radius: 6px; border: 2px solid #1746b5;
         background: #1746b5; color: #fff; margin: 1rem .5rem 0 0; cursor: pointer; }
button.secondary { background: #fff; color: #1746b5; }
button:focus-visible, input:focus-visible { outline: 3px solid #b54708; outline-offset: 2px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; }
"""

_DESCRIPTIONS = {
    "card_ok": "Card that always succeeds",
    "card_insufficient_funds": "Declined: insufficient funds (soft)",
    "card_processing_error": "Declined: processing error (soft)",
    "card_try_again_later": "Declined: try again later (soft)",
    "card_lost": "Declined: lost card (hard)",
    "card_stolen": "Declined: stolen card (hard)",
    "card_do_not_honor": "Declined: do not honor (hard)",
    "card_expired": "Declined: expired card",
    "card_3ds": "Requires 3-D Secure authentication",
    "card_async": "Settles asynchronously after a short delay",
    "card_timeout": "Charged, but the answer comes too late (timeout)",
    "sepa_ok": "SEPA Direct Debit, settles after 2 days",
    "sepa_chargeback": "SEPA Direct Debit, settles, then charged back after 7 days",
    "card_updatable": "Card renewed by the account updater at expiry",
    "card_expiring": "Card that cannot be renewed (expiring notice 30 days ahead)",
}


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} · Tiergate payment sandbox</title>\n<style>{_STYLE}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _amount(amount: int, currency: str) -> str:
    # Every sandbox currency (EUR, USD, GBP) has two decimals.
    return f"{amount // 100}.{amount % 100:02d} {escape(currency)}"


def setup_page(session: dict[str, Any], error: str | None = None) -> str:
    if session["status"] != "open":
        return message_page(
            "Payment method saved", "This setup session is complete. You can close this page."
        )
    choices = []
    for i, method in enumerate(methods_of_types(session["method_types"])):
        label = _DESCRIPTIONS.get(method.name, method.name)
        detail = f"{method.brand or 'SEPA'} ···· {method.last4}"
        checked = " checked" if i == 0 else ""
        choices.append(
            f'<div class="choice"><input type="radio" id="m-{method.name}" name="test_method" '
            f'value="{method.name}"{checked}> <label for="m-{method.name}">{escape(label)} '
            f'<span class="hint">({escape(detail)}, <code>{method.name}</code>)</span></label></div>'
        )
    alert = f'<p role="alert">{escape(error)}</p>' if error else ""
    body = (
        "<h1>Save a payment method</h1>\n"
        '<p class="note">This is a payment sandbox: no real card or account is needed. Pick how the saved '
        "method will behave.</p>\n"
        f"{alert}"
        '<form method="post">\n<fieldset>\n<legend>Test payment method</legend>\n'
        + "\n".join(choices)
        + '\n</fieldset>\n<button type="submit">Save payment method</button>\n</form>'
    )
    return _page("Save a payment method", body)


def challenge_page(payment: dict[str, Any]) -> str:
    if payment["status"] != "requires_action":
        return result_page(payment)
    body = (
        "<h1>Confirm your payment</h1>\n"
        '<p class="note">Your bank asks you to confirm this payment (3-D Secure, sandbox).</p>\n'
        f"<dl><dt>Amount</dt><dd>{_amount(payment['amount'], payment['currency'])}</dd>"
        f"<dt>Description</dt><dd>{escape(payment.get('description') or '—')}</dd></dl>\n"
        '<form method="post">\n'
        '<button type="submit" name="outcome" value="complete">Complete authentication</button>\n'
        '<button type="submit" name="outcome" value="fail" class="secondary">Fail authentication</button>\n'
        "</form>"
    )
    return _page("Confirm your payment", body)


def result_page(payment: dict[str, Any]) -> str:
    outcome = {
        "succeeded": "The payment is authenticated and succeeded.",
        "failed": "The authentication failed; the payment was declined.",
    }.get(payment["status"], f"The payment is {payment['status']}.")
    return message_page("Payment " + payment["status"].replace("_", " "), outcome)


def message_page(title: str, text: str) -> str:
    return _page(title, f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>")


def known_method(name: str) -> bool:
    return name in TEST_METHODS
