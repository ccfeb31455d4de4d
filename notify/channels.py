"""Sending one notification: a signed webhook POST, an e-mail over SMTP, or a line in a file.

Webhook signature (verify with :func:`verify`): header ``X-Quantrac-Signature: t=<unix
seconds>,v1=<hex>``, where hex = HMAC-SHA256(secret, ``<t>.`` + body). The timestamp lets a
receiver refuse replays older than a few minutes; ``X-Quantrac-Delivery`` carries the delivery
id, the same on every retry, so a receiver can drop a repeat (delivery is at-least-once).

Errors are :class:`SendError` with a message fit for the delivery log: never a password, a
secret, or a URL's user information or query.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Literal

import httpx

SIGNATURE_HEADER = "X-Quantrac-Signature"
DELIVERY_HEADER = "X-Quantrac-Delivery"


class SendError(Exception):
    """A channel did not confirm a message; the text is safe to store and show."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance_s: float = 300
) -> bool:
    """A receiver's check: the signature is ours and its timestamp is recent."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, f"t={timestamp},v1={fields.get('v1', '')}")


def body_bytes(doc: dict[str, Any]) -> bytes:
    """The webhook body: compact, key-sorted JSON (the same bytes on every retry)."""
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def post_webhook(
    url: str, shown_as: str, doc: dict[str, Any], *, secret: str, timeout_s: float
) -> None:
    body = body_bytes(doc)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "quantrac-notify",
        SIGNATURE_HEADER: sign(secret, int(time.time()), body),
        DELIVERY_HEADER: str(doc.get("delivery", "")),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise SendError(f"{shown_as}: {type(exc).__name__} ({_without(str(exc), url)})") from None
    if not 200 <= response.status_code < 300:
        raise SendError(f"{shown_as}: HTTP {response.status_code}")


def _without(text: str, url: str) -> str:
    return text.replace(url, "<url>") or "no detail"


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    security: Literal["off", "starttls", "ssl"] = "off"
    username: str | None = None
    password: str | None = None
    timeout_s: float = 10.0


def message_id(delivery: str) -> str:
    """The same Message-ID on every retry: a mail client shows a repeat once."""
    return f"<{hashlib.sha256(delivery.encode()).hexdigest()[:32]}@quantrac.notify>"


def send_email(
    cfg: SmtpConfig, to: tuple[str, ...], subject_line: str, text: str, delivery: str
) -> None:
    msg = EmailMessage()
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject_line
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = message_id(delivery)
    msg[DELIVERY_HEADER] = delivery
    msg.set_content(text)
    where = f"smtp {cfg.host}:{cfg.port}"
    try:
        if cfg.security == "ssl":
            ctx = ssl.create_default_context()
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout_s, context=ctx
            )
        else:
            client = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with client:
            if cfg.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if cfg.username:
                client.login(cfg.username, cfg.password or "")
            refused = client.send_message(msg)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"{where}: login refused ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raw = exc.smtp_error
        detail = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise SendError(f"{where}: {exc.smtp_code} {detail}".strip()) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"{where}: every recipient refused ({', '.join(exc.recipients)})") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise SendError(f"{where}: {type(exc).__name__} ({exc})") from None
    if refused:  # some recipients accepted: those refused are named; the delivery is retried
        raise SendError(f"{where}: refused {', '.join(sorted(refused))}")


def append_line(path: Path, doc: dict[str, Any]) -> None:
    """One JSON line, flushed to disk before the delivery counts as sent."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(body_bytes(doc) + b"\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise SendError(f"{path}: {exc.strerror}") from None
