"""The pure parts of delivery: payload formats, subjects, signatures, digests, cooldowns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from standardwebhooks import Webhook

from tests.delivery_helpers import T0, alert
from watcher.core.digest import (
    Policy,
    digest_id,
    group,
    hold_until,
    next_digest_at,
    parse_cooldown,
    parse_digest,
)
from watcher.core.display import one_line
from watcher.core.errors import ConfigError
from watcher.core.models import Digest
from watcher.delivery import signing
from watcher.delivery.channels import load_templates
from watcher.delivery.channels.email import build_message
from watcher.delivery.channels.webhook import ntfy_target
from watcher.delivery.render import (
    discord_payload,
    mark_html,
    ntfy_payload,
    slack_payload,
    teams_payload,
)
from watcher.delivery.templating import TemplateError, compile_templates

ROOT = Path(__file__).resolve().parents[1]
UTC_TZ = ZoneInfo("UTC")


# -- subjects and marking ---------------------------------------------------------

@pytest.mark.parametrize(("raw", "clean"), [
    ("plain title", "plain title"),
    ("two\r\nlines", "two lines"),
    ("Bcc: evil@example.org\nX", "Bcc: evil@example.org X"),
    ("tab\tand\x00nul\x1b[31m", "tab and nul"),
    ("line\u2028separator\u0085next", "line separator next"),
    ("  lots   of   space  ", "lots of space"),
    ("x" * 300, "x" * 199 + "…"),
])
def test_one_line_removes_every_control_character(raw: str, clean: str) -> None:
    assert one_line(raw) == clean


def test_email_subject_has_no_header_injection() -> None:
    templates = load_templates("mail", None)
    evil = alert(title="Missile\r\nBcc: victim@example.org\r\n\r\nbody")
    msg = build_message(evil, templates, "watcher@example.org", ["desk@example.org"], T0)
    assert "\n" not in msg["Subject"] and "\r" not in msg["Subject"]
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[watcher] missiles: Missile Bcc: victim@example.org body"


def test_email_message_headers_and_parts() -> None:
    templates = load_templates("mail", None)
    msg = build_message(alert(7), templates, "watcher@example.org",
                        ["desk@example.org", "b@example.org"], T0)
    assert alert(7).delivery_id in msg["Message-ID"]
    assert msg["Message-ID"].endswith("@example.org>")
    assert msg["Date"] == "Mon, 02 Mar 2026 10:00:00 +0000"
    assert msg["List-Id"] == '"watcher rule missiles" <missiles.watcher.example.org>'
    assert "missiles" in msg["List-Unsubscribe"]
    assert msg["To"] == "desk@example.org, b@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for body in (text, html):
        for why in ("missiles", "tactical missile", "summary", "world",
                    "https://news.example.org/7", "2026-03-02 09:00"):
            assert why in body, why
    assert "**tactical missile**" in text
    assert "<mark>tactical missile</mark>" in html


def test_html_is_escaped_but_marks_survive() -> None:
    out = mark_html("<script>alert(1)</script> a tactical missile & more",
                    ("tactical missile",))
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<mark>tactical missile</mark>" in out and "&amp; more" in out
    templates = load_templates("mail", None)
    msg = build_message(alert(title="<img src=x onerror=alert(1)>"), templates,
                        "w@example.org", ["d@example.org"], T0)
    html = msg.get_body(("html",)).get_content()
    assert "<img" not in html and "&lt;img" in html


def test_digest_email_lists_every_article() -> None:
    templates = load_templates("mail", None)
    digest = Digest(id="wg_" + "a" * 32, rule="missiles",
                    alerts=tuple(alert(n) for n in range(1, 4)))
    msg = build_message(digest, templates, "w@example.org", ["d@example.org"], T0)
    assert msg["Subject"] == "[watcher] missiles: 3 new articles"
    assert digest.id in msg["Message-ID"]
    text = msg.get_body(("plain",)).get_content()
    for n in (1, 2, 3):
        assert f"Story {n}: a new tactical missile" in text
        assert f"(story {n})" in text


# -- webhook formats --------------------------------------------------------------

def test_generic_payload_keeps_the_documented_v1_shape() -> None:
    templates = load_templates("hook", None)
    payload = templates.generic(alert(3), "2026-03-02T10:00:00Z")
    assert payload == {
        "schema": "watcher.alert/v1", "id": alert(3).delivery_id,
        "sent_at": "2026-03-02T10:00:00Z", "rule": "missiles", "query": '"tactical missile"',
        "article": {"title": "Story 3: a new tactical missile",
                    "url": "https://news.example.org/3", "feed": "world",
                    "published": "2026-03-02T09:00:00.000000Z", "text_source": "page",
                    "sources": []},
        "match": {"field": "summary",
                  "snippet": "The army showed a new tactical missile system (story 3).",
                  "matched": ["tactical missile"]}}


def test_generic_payloads_match_the_published_schema() -> None:
    schema = json.loads((ROOT / "config" / "webhook-payload.schema.json").read_text())
    templates = load_templates("hook", None)
    single = templates.generic(alert(1, title='quote " and </script>'), "2026-03-02T10:00:00Z")
    digest = templates.generic(Digest("wg_x", "missiles", (alert(1), alert(2))),
                               "2026-03-02T10:00:00Z")
    assert digest["schema"] == "watcher.digest/v1" and digest["count"] == 2
    assert [a["id"] for a in digest["alerts"]] == [alert(1).delivery_id, alert(2).delivery_id]
    assert single["article"]["title"] == 'quote " and </script>'
    for payload in (single, digest):
        jsonschema.validate(payload, schema)  # the published schema, fully checked



def _slack_elements(payload: dict[str, Any], block: int = 1) -> list[dict[str, Any]]:
    (section,) = payload["blocks"][block]["elements"]
    assert payload["blocks"][block]["type"] == "rich_text"
    return list(section["elements"])


def test_slack_payload() -> None:
    p = slack_payload(alert(1, title="A <b> & c"))
    assert p["text"] == "watcher [missiles]: A &lt;b&gt; &amp; c" and p["mrkdwn"] is False
    head, *rest = _slack_elements(p)
    assert head == {"type": "link", "url": "https://news.example.org/1", "text": "A <b> & c",
                    "style": {"bold": True}}
    assert {"type": "text", "text": "tactical missile", "style": {"bold": True}} in rest
    assert "world" in rest[-1]["text"] and rest[-1]["style"] == {"italic": True}
    d = slack_payload(Digest("wg_1", "missiles", tuple(alert(n) for n in range(3))))
    assert len(d["blocks"]) == 4 and "3 article(s)" in d["text"]


# What a feed may put in a title to forge formatting, a link or a mention in Slack.
FORGERIES = ["*bold* _italic_ ~strike~ `code`", "<https://evil.example|Your bank>",
             "<!channel> <!here> <@U123> <#C123>", "a | b > c < d & e &amp; f",
             "[evil](https://evil.example/) ```block```", "&lt;!channel&gt;"]


@pytest.mark.parametrize("title", FORGERIES)
def test_slack_shows_feed_titles_as_written_and_links_only_where_watcher_puts_them(
        title: str) -> None:
    p = slack_payload(alert(1, title=title))
    head, *rest = _slack_elements(p)
    # rich_text elements are literal: the title is the link's text, character for character
    assert head["type"] == "link" and head["text"] == title
    assert head["url"] == "https://news.example.org/1"
    assert not any(e["type"] in ("link", "user", "channel", "broadcast") for e in rest)
    # the notification text is mrkdwn: Slack's three control characters escaped
    note = p["text"].removeprefix("watcher [missiles]: ")
    assert "<" not in note and ">" not in note
    assert note.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == title


@pytest.mark.parametrize("url", ["https://x.example/a|b>c<!channel>", "javascript:alert(1)",
                                 None])
def test_slack_links_carry_the_url_as_data_and_only_http(url: str | None) -> None:
    head = _slack_elements(slack_payload(alert(1, url=url)))[0]
    if url and url.startswith("https"):
        assert head == {"type": "link", "url": url, "text": alert(1).title,
                        "style": {"bold": True}}
    else:
        assert head == {"type": "text", "text": alert(1).title, "style": {"bold": True}}


@pytest.mark.parametrize("title", FORGERIES)
def test_markdown_channels_escape_every_syntax_character_of_a_title(title: str) -> None:
    discord = discord_payload(alert(1, title=title))
    link = ntfy_payload(alert(1, title=title), "t")["message"].split("\n")[0]
    assert link.startswith("[") and link.endswith("](https://news.example.org/1)")
    for text in (discord["embeds"][0]["title"],
                 discord["content"].removeprefix("watcher [missiles]: "),
                 link.removeprefix("[").removesuffix("](https://news.example.org/1)")):
        unescaped = re.sub(r"\\(.)", "", text)
        # no syntax character is left bare: none can open emphasis, code or a link
        assert not re.search(r"[*_~`<>\[\]|]", unescaped), text


def test_discord_payload_never_mentions_anyone() -> None:
    p = discord_payload(alert(1, title="@everyone look"))
    assert p["allowed_mentions"] == {"parse": []}
    embed = p["embeds"][0]
    assert embed["url"] == "https://news.example.org/1"
    assert "**tactical missile**" in embed["description"]
    assert {f["name"] for f in embed["fields"]} == {"rule", "feed", "why"}
    many = discord_payload(Digest("wg_1", "missiles", tuple(alert(n) for n in range(12))))
    assert len(many["embeds"]) == 10 and "(+2 more)" in many["content"]


def test_teams_payload_is_an_adaptive_card() -> None:
    p = teams_payload(alert(2))
    card = p["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    texts = " ".join(b["text"] for b in card["content"]["body"])
    assert "[Story 2: a new tactical missile](https://news.example.org/2)" in texts


def test_ntfy_payload_and_target() -> None:
    assert ntfy_target("https://ntfy.sh/alerts-x") == ("https://ntfy.sh/", "alerts-x")
    assert ntfy_target("http://127.0.0.1:81/sub/topic/") == ("http://127.0.0.1:81/sub/",
                                                             "topic")
    p = ntfy_payload(alert(4), "alerts-x")
    assert p["topic"] == "alerts-x" and p["click"] == "https://news.example.org/4"
    assert p["markdown"] is True and "**tactical missile**" in p["message"]
    assert "click" not in ntfy_payload(Digest("wg", "missiles", (alert(1), alert(2))), "t")


# -- signatures -------------------------------------------------------------------

def test_signature_verifies_with_standard_webhooks_whsec_secret() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"x": 1}'
    now = int(time.time())
    headers = signing.headers(secret, "wd_1", now, body)
    assert headers["webhook-id"] == "wd_1" and headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    wh = Webhook(secret)
    assert wh.verify(body, headers) == {"x": 1}


def test_known_signature_vector() -> None:
    # The example from the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == \
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_raw_secret_is_keyed_by_its_utf8_bytes() -> None:
    import base64

    body = b"{}"
    headers = signing.headers("plain-secret", "wd_2", int(time.time()), body)
    wh = Webhook("whsec_" + base64.b64encode(b"plain-secret").decode())
    wh.verify(body, headers)
    assert "webhook-signature" not in signing.headers(None, "wd_2", 1, body)


# -- digests and cooldowns --------------------------------------------------------

@pytest.mark.parametrize(("value", "spec"), [
    ("hourly", "hourly"), ("Daily", "daily"), ("08:00", "08:00"), ("8:05", "08:05"),
    (480, "08:00"), (1439, "23:59"), ("23:59", "23:59")])
def test_parse_digest(value: object, spec: str) -> None:
    assert parse_digest(value) == spec


@pytest.mark.parametrize("value", ["weekly", "24:00", "8", "08:60", "", True])
def test_parse_digest_refuses(value: object) -> None:
    with pytest.raises(ValueError):
        parse_digest(value)


@pytest.mark.parametrize(("value", "seconds"), [("30m", 1800), ("90s", 90), ("2h", 7200),
                                                ("1d", 86400), (45, 45)])
def test_parse_cooldown(value: object, seconds: float) -> None:
    assert parse_cooldown(value) == seconds


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("hourly", "2026-03-02T10:00:00", "2026-03-02T11:00:00"),
    ("hourly", "2026-03-02T10:59:59", "2026-03-02T11:00:00"),
    ("daily", "2026-03-02T10:00:00", "2026-03-03T00:00:00"),
    ("08:00", "2026-03-02T07:59:00", "2026-03-02T08:00:00"),
    ("08:00", "2026-03-02T08:00:00", "2026-03-03T08:00:00"),
    ("08:00", "2026-03-02T23:00:00", "2026-03-03T08:00:00"),
])
def test_next_digest_at_utc(spec: str, after: str, expected: str) -> None:
    when = next_digest_at(spec, datetime.fromisoformat(after).replace(tzinfo=UTC), UTC_TZ)
    assert when == datetime.fromisoformat(expected).replace(tzinfo=UTC)


def test_next_digest_at_follows_the_configured_zone_and_dst() -> None:
    oslo = ZoneInfo("Europe/Oslo")
    # 07:30 UTC on 2 March is 08:30 in Oslo (UTC+1): the next 08:00 is tomorrow, 07:00 UTC.
    when = next_digest_at("08:00", datetime(2026, 3, 2, 7, 30, tzinfo=UTC), oslo)
    assert when == datetime(2026, 3, 3, 7, 0, tzinfo=UTC)
    # Summer time (UTC+2) from 29 March 2026: 08:00 Oslo is 06:00 UTC.
    when = next_digest_at("08:00", datetime(2026, 3, 29, 5, 0, tzinfo=UTC), oslo)
    assert when == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(("created_min", "last_immediate_min", "held_until_min"), [
    (0, None, None),    # the first match alerts at once
    (5, 0, 30),         # inside the 30 min window: held until it ends
    (29, 0, 30),
    (30, 0, None),      # the window is over: alert at once (a new window opens)
    (45, 0, None),
])
def test_cooldown_decisions(created_min: int, last_immediate_min: int | None,
                            held_until_min: int | None) -> None:
    policy = Policy(cooldown_s=1800)
    last = T0 + timedelta(minutes=last_immediate_min) if last_immediate_min is not None \
        else None
    got = hold_until(policy, T0 + timedelta(minutes=created_min), last, UTC_TZ)
    assert got == (T0 + timedelta(minutes=held_until_min) if held_until_min is not None
                   else None)


def test_digest_rule_always_holds_and_wins_over_cooldown() -> None:
    policy = Policy(cooldown_s=60, digest="hourly")
    assert hold_until(policy, T0, None, UTC_TZ) == T0 + timedelta(hours=1)
    assert hold_until(Policy(), T0, T0, UTC_TZ) is None


def test_digest_ids_are_stable_per_window_and_channel() -> None:
    a = digest_id("r", "hook", T0)
    assert a == digest_id("r", "hook", T0) and a.startswith("wg_")
    assert a != digest_id("r", "mail", T0) and a != digest_id("r", "hook", T0 + timedelta(1))


def test_group_keeps_first_seen_order() -> None:
    assert group(["a", "b", "c", "d"], ["x", "y", "x", "z"]) == [
        ("x", ["a", "c"]), ("y", ["b"]), ("z", ["d"])]


# -- templates --------------------------------------------------------------------


def test_template_errors_are_found_before_the_first_alert(tmp_path: Path) -> None:
    bad = tmp_path / "subject.txt"
    bad.write_text("{{ alert.title }")
    from watcher.settings.model import TemplatePaths

    with pytest.raises(ConfigError, match=r"channel 'mail': template .*subject.txt:1"):
        load_templates("mail", TemplatePaths(subject=bad))
    bad.write_text("{{ alert.no_such_field }}")
    with pytest.raises(ConfigError, match="no_such_field"):
        load_templates("mail", TemplatePaths(subject=bad))
    gen = tmp_path / "generic.json"
    gen.write_text("not json {{ id }}")
    with pytest.raises(ConfigError, match="not JSON"):
        load_templates("hook", TemplatePaths(generic=gen))


def test_custom_template_is_used(tmp_path: Path) -> None:
    from watcher.settings.model import TemplatePaths

    (tmp_path / "s.txt").write_text("ALERT {{ rule }} / {{ count }}")
    templates = load_templates("mail", TemplatePaths(subject=tmp_path / "s.txt"))
    assert templates.email(alert(1))[0] == "ALERT missiles / 1"


def test_compile_reports_missing_template() -> None:
    with pytest.raises(TemplateError):
        compile_templates({"subject": "x"})


def test_apprise_channel_without_the_package_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    import yaml

    from watcher.settings import load_settings

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "apprise" else real(name, *a))
    (tmp_path / "w.yaml").write_text(yaml.safe_dump({
        "database": "db", "rules": "r.yaml",
        "channels": {"phone": {"type": "apprise", "url": "tgram://token/chat"}}}))
    with pytest.raises(ConfigError, match=r"channels\.phone\.url: .*needs the apprise package"):
        load_settings(tmp_path / "w.yaml")


def test_webhook_secret_must_be_valid_whsec(tmp_path: Path) -> None:
    import yaml

    from watcher.settings import load_settings

    (tmp_path / "w.yaml").write_text(yaml.safe_dump({
        "database": "db", "rules": "r.yaml",
        "channels": {"hook": {"type": "webhook", "url": "https://example.org/h",
                              "secret": "whsec_not base64!"}}}))
    with pytest.raises(ConfigError, match="whsec_ secret must be base64"):
        load_settings(tmp_path / "w.yaml")


# A child process whose file-size limit cuts the second record mid-write, as a full
# disk would: the record is rolled back, a retry after the limit is lifted appends
# it whole, and a partial line left by a crash is cut off before the next append.
_FULL_DISK = """
import asyncio, json, resource, signal, sys
from pathlib import Path
from tests.delivery_helpers import alert
from watcher.core.errors import DeliveryError
from watcher.delivery.channels.jsonl import JsonlChannel

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, like ENOSPC
path = Path(sys.argv[1])
channel = JsonlChannel("file", path)
asyncio.run(channel.send(alert(1)))
size = path.stat().st_size
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
try:
    asyncio.run(channel.send(alert(2)))
    print("sent?!")
except DeliveryError as exc:
    print("failed:", exc)
after_failure = path.read_bytes()
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
asyncio.run(channel.send(alert(2)))
with path.open("ab") as fh:
    fh.write(b'{"id": "half a rec')  # a crash in the middle of a write
asyncio.run(channel.send(alert(3)))
print(json.dumps({"size": size, "after_failure": len(after_failure),
                  "lines": path.read_text().splitlines()}))
"""


def test_jsonl_writes_whole_lines_or_nothing_when_the_disk_fills(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path / "alerts.jsonl")],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    first, last = out.stdout.splitlines()[0], out.stdout.splitlines()[-1]
    assert first.startswith("failed: deliver: channel 'file': cannot write"), out.stdout
    result = json.loads(last)
    assert result["after_failure"] == result["size"]  # the partial record was cut back
    ids = [json.loads(line)["id"] for line in result["lines"]]  # every line parses
    assert ids == [alert(1).delivery_id, alert(2).delivery_id, alert(3).delivery_id]
