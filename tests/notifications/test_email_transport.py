"""The `MailTransport` contract, run against both adapters: the `.eml` folder and SMTP to a real
aiosmtpd server. What one accepts, the other delivers byte for byte (headers, both parts, attachment)."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway.notifications.email_transport import (
    FileTransport,
    MailSendError,
    MailTransport,
    SmtpTransport,
    transport_from_settings,
)
from tests.notifications.smtp import Mailbox, SmtpServer, free_port, html_part, text_part


def sample(message_id: str) -> bytes:
    mime = EmailMessage()
    mime["Subject"] = "Factuur TG-1 van Acme"
    mime["From"] = "Acme <billing@acme.example>"
    mime["To"] = "ann@customer.example"
    mime["Message-ID"] = f"<{message_id}@tiergate.mail>"
    mime.set_content("Te betalen: € 35,09\n")
    mime.add_alternative("<p>Te betalen: € 35,09</p>\n", subtype="html")
    mime.add_attachment(b"%PDF-1.4 test", maintype="application", subtype="pdf", filename="TG-1.pdf")
    return mime.as_bytes()


class Delivered:
    """Reads back what a transport delivered."""

    def __init__(self, mailbox: Mailbox | None, folder: Path | None) -> None:
        self.mailbox, self.folder = mailbox, folder

    def messages(self) -> list[EmailMessage]:
        if self.mailbox is not None:
            return [a.message for a in self.mailbox.arrived]
        assert self.folder is not None
        out = []
        for path in sorted(self.folder.glob("*.eml")):
            parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            out.append(parsed)
        return out


@pytest.fixture(params=["file", "smtp"])
def adapter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[MailTransport, Delivered]]:
    if request.param == "file":
        folder = tmp_path / "var" / "mail"  # created on first use
        yield FileTransport(folder), Delivered(None, folder)
        return
    mailbox = Mailbox()
    with SmtpServer(mailbox) as server:
        yield SmtpTransport("127.0.0.1", server.port, timeout_seconds=5), Delivered(mailbox, None)


async def test_a_message_arrives_whole_once_per_send(adapter: tuple[MailTransport, Delivered]) -> None:
    transport, delivered = adapter
    await transport.send("em_1", sample("em_1"), "billing@acme.example", ["ann@customer.example"])
    await transport.send("em_2", sample("em_2"), "billing@acme.example", ["ann@customer.example"])
    first, second = delivered.messages()
    assert [first["Message-ID"], second["Message-ID"]] == ["<em_1@tiergate.mail>", "<em_2@tiergate.mail>"]
    assert first["Subject"] == "Factuur TG-1 van Acme"
    assert text_part(first) == "Te betalen: € 35,09\n"
    assert html_part(first) == "<p>Te betalen: € 35,09</p>\n"
    [pdf] = list(first.iter_attachments())
    assert (pdf.get_filename(), pdf.get_content_type(), pdf.get_content()) == (
        "TG-1.pdf",
        "application/pdf",
        b"%PDF-1.4 test",
    )


async def test_smtp_failures_are_classified() -> None:
    mailbox = Mailbox(refuse_first=1)
    with SmtpServer(mailbox) as server:
        transport = SmtpTransport("127.0.0.1", server.port, timeout_seconds=5)
        with pytest.raises(MailSendError) as refused:
            await transport.send("em_1", sample("em_1"), "b@acme.example", ["ann@customer.example"])
        assert refused.value.failure == "smtp_4xx"
        await transport.send("em_1", sample("em_1"), "b@acme.example", ["ann@customer.example"])
        assert len(mailbox.arrived) == 1
    with pytest.raises(MailSendError) as down:
        await SmtpTransport("127.0.0.1", free_port(), timeout_seconds=2).send(
            "em_2", sample("em_2"), "b@acme.example", ["ann@customer.example"]
        )
    assert down.value.failure == "connection_error"


def test_credentials_come_from_the_environment_only(tmp_path: Path) -> None:
    settings = Settings(
        mail_transport="smtp", smtp_host="smtp.example", smtp_port=587, smtp_security="starttls"
    )
    smtp = transport_from_settings(settings, {"TIERGATE_SMTP_USERNAME": "u", "TIERGATE_SMTP_PASSWORD": "p"})
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.host, smtp.port, smtp.security, smtp.username, smtp.password) == (
        "smtp.example",
        587,
        "starttls",
        "u",
        "p",
    )
    assert (
        repr(smtp)
        == "SmtpTransport(host='smtp.example', port=587, security='starttls', timeout_seconds=10.0)"
    )
    folder = transport_from_settings(Settings(mail_transport="file", mail_dir=str(tmp_path / "m")), {})
    assert folder == FileTransport(tmp_path / "m")
    with pytest.raises(ValueError, match="mail_transport"):
        transport_from_settings(Settings(mail_transport="pigeon"), {})
