"""E-mail with attachments over SMTP (stdlib smtplib/email), for the scheduled reports.

Small on purpose: one message, one connection, STARTTLS and a login when configured. Errors
come out as MailError with the server's reply, so the caller can record and retry them.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any


class MailError(RuntimeError):
    """The message was not accepted; the text says by whom and why."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    starttls: bool = True
    user: str | None = None
    password: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> SmtpConfig | None:
        """None when no SMTP host is configured (reports are then stored, not mailed)."""
        if not settings.schedule_smtp_host:
            return None
        return cls(
            host=settings.schedule_smtp_host,
            port=settings.schedule_smtp_port,
            sender=settings.schedule_smtp_from,
            starttls=settings.schedule_smtp_starttls,
            user=settings.schedule_smtp_user,
            password=settings.schedule_smtp_password,
        )


@dataclass(frozen=True)
class Attachment:
    filename: str
    media_type: str  # e.g. application/pdf
    content: bytes


def recipients(text: str) -> list[str]:
    """A comma- or semicolon-separated list of addresses, blanks dropped."""
    return [a.strip() for a in text.replace(";", ",").split(",") if a.strip()]


def build_message(
    sender: str, to: Sequence[str], subject: str, body: str, attachments: Sequence[Attachment]
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(body)
    for a in attachments:
        maintype, _, subtype = a.media_type.partition(";")[0].strip().partition("/")
        msg.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    return msg


def send(config: SmtpConfig, msg: EmailMessage, timeout: float = 30.0) -> None:
    """Deliver ``msg`` to its To addresses; MailError unless the server accepted all of them."""
    try:
        with smtplib.SMTP(config.host, config.port, timeout=timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.user:
                smtp.login(config.user, config.password or "")
            refused = smtp.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(f"SMTP {config.host}:{config.port}: {exc}") from exc
    if refused:  # some recipients accepted, some not: report the others
        raise MailError(f"SMTP {config.host}:{config.port} refused {sorted(refused)}")
