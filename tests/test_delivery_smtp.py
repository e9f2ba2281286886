"""Email against a real SMTP server (aiosmtpd) on 127.0.0.1 with STARTTLS or TLS."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import run_watcher
from tests.delivery_helpers import alert
from tests.servers import LoopbackServer
from watcher.core.errors import DeliveryError
from watcher.core.models import Digest
from watcher.delivery.channels import load_templates
from watcher.delivery.channels.email import EmailChannel, Smtp

USER, PASSWORD = "watcher", "pa55-w0rd-from-env"


@dataclass
class Handler:
    """Records messages; `data_reply` / `rcpt_reply` make the server refuse."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)
    data_reply: str | None = None
    rcpt_reply: str | None = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(  # type: ignore[arg-type]
            envelope.content, policy=email.policy.default))
        return "250 Message accepted"


def _auth(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.login == USER.encode() \
        and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SmtpServer:
    handler: Handler
    port: int
    ca_file: Path
    controller: Controller


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _server(ca: trustme.CA, tmp: Path, implicit_tls: bool) -> Iterator[SmtpServer]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = Handler()
    port = _free_port()
    if implicit_tls:
        controller = Controller(handler, hostname="127.0.0.1", port=port, ssl_context=ctx,
                                authenticator=_auth, auth_require_tls=False)
    else:
        controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx,
                                require_starttls=True, authenticator=_auth,
                                auth_require_tls=True)
    controller.start()
    try:
        yield SmtpServer(handler, port, ca_file, controller)
    finally:
        controller.stop()


@pytest.fixture
def starttls_server(ca: trustme.CA, tmp_path: Path) -> Iterator[SmtpServer]:
    yield from _server(ca, tmp_path, implicit_tls=False)


@pytest.fixture
def tls_server(ca: trustme.CA, tmp_path: Path) -> Iterator[SmtpServer]:
    yield from _server(ca, tmp_path, implicit_tls=True)


def channel(server: SmtpServer, security: str = "starttls", trust: bool = True,
            password: str = PASSWORD) -> EmailChannel:
    smtp = Smtp(host="127.0.0.1", port=server.port, security=security, username=USER,
                password=password, ca_file=server.ca_file if trust else None, timeout_s=10)
    return EmailChannel("analysts", smtp, "watcher@example.org",
                        ["desk@example.org", "duty@example.org"],
                        load_templates("analysts", None))


def test_starttls_with_login_delivers_a_multipart_alert(starttls_server: SmtpServer) -> None:
    asyncio.run(channel(starttls_server).send(alert(5)))
    (msg,) = starttls_server.handler.messages
    (env,) = starttls_server.handler.envelopes
    assert env.mail_from == "watcher@example.org"
    assert env.rcpt_tos == ["desk@example.org", "duty@example.org"]
    assert msg["Subject"] == "[watcher] missiles: Story 5: a new tactical missile"
    assert alert(5).delivery_id in msg["Message-ID"]
    assert msg["Date"] and "missiles" in msg["List-Id"] and "missiles" in msg["List-Unsubscribe"]
    assert msg.get_content_type() == "multipart/alternative"
    assert "**tactical missile**" in msg.get_body(("plain",)).get_content()
    assert "<mark>tactical missile</mark>" in msg.get_body(("html",)).get_content()


def test_implicit_tls_delivers_a_digest(tls_server: SmtpServer) -> None:
    digest = Digest("wg_" + "d" * 32, "missiles", (alert(1), alert(2)))
    asyncio.run(channel(tls_server, security="tls").send_digest(digest))
    (msg,) = tls_server.handler.messages
    assert digest.id in msg["Message-ID"]
    assert msg["Subject"] == "[watcher] missiles: 2 new articles"
    text = msg.get_body(("plain",)).get_content()
    assert "Story 1" in text and "Story 2" in text


def test_untrusted_certificate_is_refused_and_retried(starttls_server: SmtpServer) -> None:
    with pytest.raises(DeliveryError) as info:
        asyncio.run(channel(starttls_server, trust=False).send(alert(1)))
    assert "certificate not trusted" in str(info.value) and not info.value.permanent
    assert str(info.value).startswith("deliver: channel 'analysts': SMTP 127.0.0.1:")
    assert starttls_server.handler.messages == []


def test_4xx_is_retried_and_5xx_is_permanent(starttls_server: SmtpServer) -> None:
    starttls_server.handler.data_reply = "451 4.3.0 Try again later"
    with pytest.raises(DeliveryError) as info:
        asyncio.run(channel(starttls_server).send(alert(1)))
    assert not info.value.permanent and "451" in str(info.value)

    starttls_server.handler.data_reply = "554 5.7.1 Message rejected"
    with pytest.raises(DeliveryError) as info:
        asyncio.run(channel(starttls_server).send(alert(1)))
    assert info.value.permanent and "554" in str(info.value)

    starttls_server.handler.data_reply = None
    starttls_server.handler.rcpt_reply = "550 5.1.1 No such user"
    with pytest.raises(DeliveryError) as info:
        asyncio.run(channel(starttls_server).send(alert(1)))
    assert info.value.permanent and "every recipient refused" in str(info.value)


def test_bad_password_is_permanent_and_never_shown(starttls_server: SmtpServer) -> None:
    with pytest.raises(DeliveryError) as info:
        asyncio.run(channel(starttls_server, password="wrong-secret-value").send(alert(1)))
    assert info.value.permanent and "535" in str(info.value)
    assert "wrong-secret-value" not in str(info.value)


def test_connection_refused_is_retried() -> None:
    smtp = Smtp(host="127.0.0.1", port=_free_port(), security="starttls", timeout_s=5)
    ch = EmailChannel("analysts", smtp, "w@example.org", ["d@example.org"],
                      load_templates("analysts", None))
    with pytest.raises(DeliveryError) as info:
        asyncio.run(ch.send(alert(1)))
    assert not info.value.permanent


def test_run_once_sends_email_with_password_from_the_environment(
        tmp_path: Path, starttls_server: SmtpServer, seed_server: LoopbackServer) -> None:
    cfg = {
        "database": "state/watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "demo-world", "url": seed_server.url("/feeds/world.xml"),
                   "allow_private": True}],
        "channels": {"analysts": {
            "type": "email", "to": ["desk@example.org"], "from": "watcher@example.org",
            "smtp": {"host": "127.0.0.1", "port": starttls_server.port,
                     "security": "starttls", "username": USER,
                     "password": "${WATCHER_TEST_SMTP_PASSWORD}",
                     "ca_file": str(starttls_server.ca_file)}}},
    }
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "tactical-missile", "any": ["tactical missile"], "none": ["video game"],
         "notify": ["analysts"]}]}))
    env = {"WATCHER_TEST_SMTP_PASSWORD": PASSWORD}
    check = run_watcher("check", "--config", str(tmp_path / "watcher.yaml"), env=env)
    assert check.returncode == 0, check.stderr
    result = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"), env=env)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    subjects = sorted(m["Subject"] for m in starttls_server.handler.messages)
    assert len(subjects) == 2 and all(s.startswith("[watcher] tactical-missile: ")
                                      for s in subjects)


def test_plain_smtp_is_refused_for_a_remote_relay(tmp_path: Path) -> None:
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump({
        "database": "db.sqlite", "rules": "rules.yaml",
        "channels": {"mail": {"type": "email", "to": "a@example.org",
                              "from": "w@example.org",
                              "smtp": {"host": "smtp.example.org", "security": "none"}}}}))
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    result = run_watcher("check", "--config", str(tmp_path / "watcher.yaml"))
    assert result.returncode == 2
    assert "channels.mail.smtp" in result.stderr and "only allowed for a relay on localhost" \
        in result.stderr
