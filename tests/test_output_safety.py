"""Escape sequences and control characters from feeds never reach a terminal, a log or
a mail's text raw; the stored text keeps them. Secrets in feed URLs are never shown.

A real JSON feed on loopback carries the probe title; `watcher run --once` matches
it and sends it to the console and to an SMTP server on loopback; then every
command that prints stored things is run.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.conftest import run_watcher
from tests.servers import LoopbackServer

PROBE = ("probe \u001b]0;PWNED-TITLE\u0007\u001b[2J\u001b[31mRED "
         "\u001b]8;;http://evil.example/\u001b\\click\u001b]8;;\u001b\\ "
         "nul\u0000 cr\rX \u202eevil\u202c \u2066iso\u2069 c1\u009b31m")
BODY = f"A tactical missile test was shown. {PROBE}\n\nSecond \u001b[5mparagraph."
# what must never come out raw: C0 (but LF and tab), DEL, C1, bidi controls
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SECRET = "SECRET-t0ken-1234"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(  # type: ignore[arg-type]
            envelope.content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "probe feed", "items": [
        {"id": "probe-1", "url": server.url("/a1"), "title": PROBE, "content_text": BODY}]}
    server.routes["/feed.json"] = (200, {"Content-Type": "application/feed+json"},
                                   json.dumps(feed).encode())
    # A feed that redirects to itself with a token and bidi/C1 bytes in the URL: its
    # stored error quotes them. (Header values travel as Latin-1 here.)
    looped = f"/loop?auth_token={SECRET}&t=\u202e\x9b31m".encode().decode("latin-1")
    server.routes["/loop"] = (302, {"Location": looped}, b"")
    yield server
    server.close()


def config(tmp: Path, site: LoopbackServer, smtp_port: int) -> str:
    cfg = {
        "database": "state/watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "probe", "url": site.url("/feed.json"), "allow_private": True},
                  {"name": "looping", "url": site.url(f"/loop?private_token={SECRET}"),
                   "allow_private": True}],
        "channels": {"screen": {"type": "console"},
                     "mail": {"type": "email", "to": ["desk@example.org"],
                              "from": "watcher@example.org",
                              "smtp": {"host": "127.0.0.1", "port": smtp_port,
                                       "security": "none"}}},
    }
    (tmp / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "missile", "any": ["tactical missile"], "notify": ["screen", "mail"]}]}))
    return str(tmp / "watcher.yaml")


def clean(text: str) -> str:
    """`text`, after checking that nothing raw is in it."""
    found = sorted({f"U+{ord(c):04X}" for c in RAW.findall(text)})
    assert not found, f"raw control characters {found} in:\n{text[:2000]}"
    return text


def test_probe_title_reaches_no_terminal_log_or_mail_raw(
        tmp_path: Path, site: LoopbackServer, mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    cfg = config(tmp_path, site, port)
    run = run_watcher("run", "--once", "--config", cfg)
    assert run.returncode == 1, run.stderr  # the looping feed failed, on purpose
    # the console channel, and the text log with its match: line
    assert "ALERT [missile] probe RED click nul cr X evil iso c1" in clean(run.stdout)
    assert "match: rule 'missile' fired on 'probe RED click" in clean(run.stderr)
    assert SECRET not in run.stderr + run.stdout
    # the mail: subject, text and HTML parts
    (message,) = box.messages
    assert "probe RED" in clean(message["Subject"])
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain = text.get_content().replace("\r\n", "\n")  # MIME's line ends
    assert "probe RED" in clean(plain) and "A **tactical missile** test" in plain
    clean(html.get_content().replace("\r\n", "\n"))

    search = run_watcher("search", "probe", "--config", cfg)
    assert "probe RED" in clean(search.stdout)
    article_id = re.search(r"#(\d+)", search.stdout).group(1)  # type: ignore[union-attr]
    show = run_watcher("show", article_id, "--config", cfg)
    assert show.returncode == 0, show.stderr
    assert "probe RED" in clean(show.stdout) and "Second paragraph." in show.stdout
    deliveries = run_watcher("deliveries", "--config", cfg)
    assert "probe RED" in clean(deliveries.stdout)
    # what is stored keeps every character
    stored = json.loads(run_watcher("show", article_id, "--json", "--config", cfg).stdout)
    assert stored["title"] == PROBE and PROBE in stored["body"]

    # The looping feed's stored error quotes its URL: shown redacted, and printable.
    for command in ("feeds", "status"):
        out = run_watcher(command, "--config", cfg)
        assert out.returncode == 0, out.stderr
        assert "redirect loop at" in clean(out.stdout), command
        assert "auth_token=***" in out.stdout and SECRET not in out.stdout, command
    status = run_watcher("status", "--json", "--config", cfg)
    assert "auth_token=***" in status.stdout and SECRET not in status.stdout
    checked = run_watcher("check", "--config", cfg)
    assert "private_token=***" in checked.stdout and SECRET not in checked.stdout
