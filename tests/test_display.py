"""core.display: text made printable, and secrets taken out of URLs and errors."""

from __future__ import annotations

import pytest

from watcher.core.display import one_line, printable, redact, shorten


@pytest.mark.parametrize(("raw", "shown"), [
    ("plain", "plain"),
    ("probe \x1b]0;PWNED-TITLE\x07\x1b[2J\x1b[31mRED", "probe RED"),  # OSC 0, CSI
    ("a \x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\ b", "a link b"),  # OSC 8
    ("bell\x07 nul\x00 del\x7f", "bell nul del"),
    ("over\rwritten", "over written"),
    ("c1 \x9b31mcsi \x9d0;t\x9c osc", "c1 csi osc"),
    ("\u202eexe.txt \u202a\u202b\u202c\u202d x", "exe.txt x"),
    ("\u2066iso\u2067late\u2068d\u2069", "isolated"),
    ("left\u200emark\u200f", "leftmark"),
    ("open \x1b]0;never ended", "open"),  # a string command left open ends the line
    ("reset\x1bc here \x1b7saved", "reset here saved"),
    ("emoji 👩\u200d💻 stays", "emoji 👩\u200d💻 stays"),
    ("l\u2028s\u2029p\x85n", "l s p n"),
    ("tab\tand  spaces", "tab and spaces"),
    (None, ""),
])
def test_printable_on_one_line(raw: str | None, shown: str) -> None:
    assert printable(raw) == shown


def test_printable_keeps_lines_and_tabs_when_asked() -> None:
    text = "one\x1b[2K\r\ntwo\rthree\u2028four\tfive\x00\n\x1b]0;x\x07six"
    assert printable(text, multiline=True) == "one\ntwo\nthree\nfour\tfive\nsix"


def test_limit_applies_to_each_line() -> None:
    assert printable("x" * 10, limit=5) == "xxxx…"
    assert printable("a" * 10 + "\nbb", multiline=True, limit=5) == "aaaa…\nbb"
    assert one_line("t" * 1_000_000) == "t" * 199 + "…"
    assert shorten("\x1b[31m" + "y" * 20, 10) == "\x1b[31myyyy…"  # cut only
    assert shorten("short", 10) == "short"


@pytest.mark.parametrize("name", [
    "token", "auth_token", "access-token", "access_token", "private_token", "accessToken",
    "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "signature",
    "key", "apikey", "api_key", "apiKey", "api-key", "client_secret", "password", "passwd",
    "auth", "code", "session_id", "jwt",
])
def test_token_like_parameters_are_redacted(name: str) -> None:
    url = f"https://feeds.example/rss?lang=en&{name}=s3cr3tVALUE&page=2"
    assert redact(url) == f"https://feeds.example/rss?lang=en&{name}=***&page=2"


@pytest.mark.parametrize("url", [
    "https://feeds.example/rss?keyword=missile&monkey=1&topic=tokens",
    "https://feeds.example/rss?q=signature+dish",
    "https://feeds.example/rss?key=",
])
def test_ordinary_parameters_stay(url: str) -> None:
    assert redact(url) == url


@pytest.mark.parametrize(("raw", "shown"), [
    ("https://user:pa55@feeds.example/rss", "https://***@feeds.example/rss"),
    ("https://t0ken@feeds.example/rss?x=1", "https://***@feeds.example/rss?x=1"),
    ("fetch: feed 'f': redirect loop at http://h.example/a?sig=abc: gave up",
     "fetch: feed 'f': redirect loop at http://h.example/a?sig=***: gave up"),
    ("see http://h.example/cb#access_token=abc&state=1",
     "see http://h.example/cb#access_token=***&state=1"),
    ("http://h.example/?a=1&amp;token=abc", "http://h.example/?a=1&amp;token=***"),
    ("'http://h.example/?apikey=abc'", "'http://h.example/?apikey=***'"),
])
def test_redact_in_urls_and_errors(raw: str, shown: str) -> None:
    assert redact(raw) == shown


def test_configured_secrets_are_redacted_wherever_they_appear() -> None:
    assert redact("login as bob with hunter22 failed", ["hunter22", "x"]) == \
        "login as bob with *** failed"
