"""Structured payment references: the ISO 11649 creditor reference ("RF" + 2 check digits + up to 21
letters and digits), which a payer quotes on a bank transfer so the payment can be matched to its
invoice without reading free text. python-stdnum checks it; the body is the invoice number."""

from __future__ import annotations

from stdnum import iso11649
from stdnum.iso7064 import mod_97_10

MAX_BODY = 21


def creditor_reference(invoice_number: str) -> str:
    """The RF reference of an invoice number: its letters and digits (upper case), check digits over
    them as ISO 11649 computes them (ISO 7064 mod 97-10 of body + "RF00")."""
    body = "".join(ch for ch in invoice_number.upper() if ch.isascii() and ch.isalnum())
    if not body or len(body) > MAX_BODY:
        raise ValueError(f"not 1 to {MAX_BODY} letters and digits: {invoice_number!r}")
    reference = "RF" + mod_97_10.calc_check_digits(body + "RF") + body
    return str(iso11649.validate(reference))


def formatted(reference: str) -> str:
    """In groups of four, as printed on an invoice ("RF18 TG20 2600 0001")."""
    return str(iso11649.format(reference))
