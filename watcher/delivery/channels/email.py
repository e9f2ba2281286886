"""Email over SMTP: STARTTLS or implicit TLS with verified certificates.

smtplib blocks, so each message is sent in a worker thread under a deadline.
4xx replies and connection failures are retried; 5xx replies are permanent.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from watcher.core.display import one_line
from watcher.core.errors import DeliveryError
from watcher.core.models import Alert, Digest
from watcher.delivery.render import Message, alerts_of, message_id
from watcher.delivery.templating import Templates

log = logging.getLogger("watcher.delivery.channels.email")


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    security: str = "starttls"  # starttls | tls | none (localhost only, checked in config)
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    timeout_s: float = 30.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_message(message: Message, templates: Templates, sender: str, to: Sequence[str],
                  now: datetime) -> EmailMessage:
    """The whole email: multipart text + HTML, Date, Message-ID and List-* headers."""
    subject, text, html = templates.email(message)
    alerts = alerts_of(message)
    rule = one_line(alerts[0].rule if alerts else getattr(message, "rule", "watcher"))
    domain = sender.rpartition("@")[2] or "watcher.invalid"
    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{message_id(message)}@{domain}>"
    msg["List-Id"] = f'"watcher rule {rule}" <{rule}.watcher.{domain}>'
    msg["List-Unsubscribe"] = f"<mailto:{sender}?subject=unsubscribe%20{rule}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Watcher-Rule"] = rule
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


class EmailChannel:
    def __init__(self, name: str, smtp: Smtp, sender: str, to: Sequence[str],
                 templates: Templates, clock: Callable[[], datetime] = _utcnow) -> None:
        self.name = name
        self._smtp = smtp
        self._sender = sender
        self._to = tuple(to)
        self._templates = templates
        self._clock = clock

    async def send(self, alert: Alert) -> None:
        await self._send(alert)

    async def send_digest(self, digest: Digest) -> None:
        await self._send(digest)

    async def _send(self, message: Message) -> None:
        msg = build_message(message, self._templates, self._sender, self._to, self._clock())
        try:
            async with asyncio.timeout(self._smtp.timeout_s * 2):
                refused = await asyncio.to_thread(self._deliver, msg)
        except TimeoutError:
            raise DeliveryError(f"channel {self.name!r}: SMTP server "
                                f"{self._smtp.host}:{self._smtp.port} timed out") from None
        if refused:
            # Some recipients took it; retrying would send them a second copy.
            log.warning("deliver: channel %r: %d recipient(s) refused %s: %s", self.name,
                        len(refused), message_id(message),
                        "; ".join(f"{code} {_text(m)}" for code, m in refused.values()))

    def _context(self) -> ssl.SSLContext:
        cafile = str(self._smtp.ca_file) if self._smtp.ca_file else None
        return ssl.create_default_context(cafile=cafile)

    def _deliver(self, msg: EmailMessage) -> dict[str, tuple[int, bytes]]:
        s = self._smtp
        where = f"channel {self.name!r}: SMTP {s.host}:{s.port}"
        try:
            if s.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_s,
                                                      context=self._context())
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout_s)
            with conn:
                conn.ehlo()
                if s.security == "starttls":
                    if not conn.has_extn("starttls"):
                        raise DeliveryError(f"{where}: the server does not offer STARTTLS; "
                                            "not sending in the clear")
                    conn.starttls(context=self._context())
                    conn.ehlo()
                if s.username:
                    conn.login(s.username, s.password or "")
                return conn.send_message(msg, from_addr=self._sender, to_addrs=list(self._to))
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{code} {_text(m)}" for code, m in exc.recipients.values())
            raise DeliveryError(f"{where}: every recipient refused: {detail}",
                                permanent=all(c >= 500 for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            code = exc.smtp_code
            raise DeliveryError(f"{where}: server answered {code} {_text(exc.smtp_error)}",
                                permanent=code >= 500) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{where}: {exc}", permanent=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"{where}: certificate not trusted "
                                f"({exc.verify_message}); set smtp.ca_file for a private CA"
                                ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        return None


def _text(value: bytes | str) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return one_line(value, 200)
