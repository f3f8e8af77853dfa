"""A real SMTP server (aiosmtpd) on a free loopback port that keeps what arrives and can refuse the
first messages with a temporary failure (451)."""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from gateway.config import Settings


@dataclass
class Arrived:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Mailbox:
    refuse_first: int = 0
    arrived: list[Arrived] = field(default_factory=list)
    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refused < self.refuse_first:
            self.refused += 1
            return "451 4.3.0 Try again later"
        self.arrived.append(Arrived(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted"

    def to(self, address: str) -> list[Arrived]:
        return [a for a in self.arrived if address in a.recipients]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.port = free_port()
        self.controller = Controller(mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.controller.stop()


def mailing_to(settings: Settings, smtp: SmtpServer) -> Settings:
    """`settings` sending mail to `smtp`, as Acme Cloud, with links to its billing site."""
    return dataclasses.replace(
        settings,
        mail_transport="smtp",
        smtp_port=smtp.port,
        mail_link_base_url="https://billing.acme.example",
        issuer_name="Acme Cloud",
    )


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # SMTP carries CRLF


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # SMTP carries CRLF
