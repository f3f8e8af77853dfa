"""The `MailTransport` port and its two adapters: SMTP (aiosmtplib) and a folder of `.eml` files.

A transport takes the finished message (bytes, with its Message-ID) and the envelope. It raises
`MailSendError` with a failure class (never the server's text, which may echo addresses) when the
message was not accepted; the sender then retries with back-off.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol

import aiosmtplib


class MailSendError(Exception):
    def __init__(self, failure: str) -> None:
        super().__init__(failure)
        self.failure = failure


class MailTransport(Protocol):
    async def send(self, message_id: str, raw: bytes, sender: str, recipients: list[str]) -> None: ...


@dataclass
class FileTransport:
    """The embedded default: one `<message id>.eml` per message in `folder` (created on first use). The
    file is written under a temporary name and renamed, so a reader never sees half a message."""

    folder: Path

    async def send(self, message_id: str, raw: bytes, sender: str, recipients: list[str]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            target = self.folder / f"{message_id}.eml"
            partial = self.folder / f".{message_id}.eml.partial"
            partial.write_bytes(raw)
            os.replace(partial, target)
        except OSError as exc:
            raise MailSendError("io_error") from exc


@dataclass
class SmtpTransport:
    host: str
    port: int
    security: str = "none"  # none | starttls | tls
    timeout_seconds: float = 10.0
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    async def send(self, message_id: str, raw: bytes, sender: str, recipients: list[str]) -> None:
        try:
            await aiosmtplib.send(
                raw,
                sender=parseaddr(sender)[1] or sender,
                recipients=recipients,
                hostname=self.host,
                port=self.port,
                use_tls=self.security == "tls",
                start_tls=self.security == "starttls",
                username=self.username,
                password=self.password,
                timeout=self.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise MailSendError("recipient_refused") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailSendError(f"smtp_{exc.code // 100}xx") from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise MailSendError("timeout") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise MailSendError("connection_error") from exc


def transport_from_settings(settings: object, env: dict[str, str] | None = None) -> MailTransport:
    """The configured adapter; SMTP credentials come from the environment only."""
    env = dict(os.environ) if env is None else env
    kind = str(getattr(settings, "mail_transport", "file"))
    if kind == "smtp":
        return SmtpTransport(
            host=str(getattr(settings, "smtp_host", "127.0.0.1")),
            port=int(getattr(settings, "smtp_port", 25)),
            security=str(getattr(settings, "smtp_security", "none")),
            timeout_seconds=float(getattr(settings, "mail_timeout_seconds", 10.0)),
            username=env.get("TIERGATE_SMTP_USERNAME") or None,
            password=env.get("TIERGATE_SMTP_PASSWORD") or None,
        )
    if kind != "file":
        raise ValueError(f"mail_transport must be 'file' or 'smtp', not {kind!r}")
    return FileTransport(Path(str(getattr(settings, "mail_dir", "var/mail"))))
