"""Bad input and operator mistakes: each refused with where and why, never a traceback."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_watcher
from tests.delivery_helpers import alert
from tests.servers import LoopbackServer, wait_for
from watcher.cli import build_parser
from watcher.cli.common import LOG_LINE_LIMIT
from watcher.core.alerts import ALERT_TITLE_LIMIT
from watcher.core.errors import RuleError
from watcher.delivery.render import discord_payload, ntfy_payload, teams_payload
from watcher.rules.load import parse_rules

DEEP = "(" * 1000 + "missile" + ")" * 1000


def write(tmp: Path, rules: str, **extra: object) -> str:
    cfg = {"database": "state/watcher.db", "rules": "rules.yaml", "feeds": [],
           "channels": {"file": {"type": "jsonl", "path": "out/alerts.jsonl"}}, **extra}
    (tmp / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp / "rules.yaml").write_text(rules)
    return str(tmp / "watcher.yaml")


def rules_yaml(query: str) -> str:
    """One rule; its query on line 3, starting at column 13."""
    return f'rules:\n  - name: deep\n    query: "{query}"\n    notify: [file]\n'


# -- a query nested 1,000 parentheses deep ------------------------------------------

def test_deeply_nested_query_is_refused_like_any_invalid_rule(tmp_path: Path) -> None:
    cfg = write(tmp_path, rules_yaml(DEEP))
    rules = tmp_path / "rules.yaml"
    # `rules check` is the linter: its findings on stdout, exit 1, as for every invalid rule
    for args, code in ((("check",), 2), (("run", "--once"), 2), (("rules", "check"), 1)):
        result = run_watcher(*args, "--config", cfg)
        assert result.returncode == code, (args, result.stderr[-2000:])
        # at the 101st parenthesis
        assert (f"{rules}:3:113: rule 'deep': query: the query is nested more than 100 "
                "levels deep") in result.stderr + result.stdout, result.stderr
        assert "Traceback" not in result.stderr and "RecursionError" not in result.stderr


@pytest.mark.parametrize("query", ["NOT " * 1000 + "missile", "-" * 1000 + "missile",
                                   "title:(" * 500 + "missile" + ")" * 500])
def test_other_deep_queries_are_refused_too(query: str) -> None:
    with pytest.raises(RuleError, match="nested more than 100 levels deep"):
        parse_rules(rules_yaml(query), channels=["file"])


def test_a_query_nested_as_deep_as_allowed_still_works() -> None:
    query = "(missile OR " * 45 + "rocket" + ")" * 45
    ruleset = parse_rules(rules_yaml(query), channels=["file"])
    assert [r.name for r in ruleset.rules] == ["deep"]


def test_deep_query_edited_in_while_running_is_logged_once(tmp_path: Path) -> None:
    feed = LoopbackServer()
    feed.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"},
                                b"<rss version='2.0'><channel><title>t</title></channel></rss>")
    cfg = write(tmp_path, rules_yaml("missile"), poll={"tick": "1s"},
                feeds=[{"name": "f", "url": feed.url("/feed.xml"), "allow_private": True,
                        "interval": "1s", "min_interval": "1s"}])
    rules = tmp_path / "rules.yaml"
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", cfg],
                                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        try:
            assert wait_for(lambda: len(feed.requests) >= 1, 30), log_path.read_text()
            rules.write_text(rules_yaml(DEEP))
            assert wait_for(lambda: "changed but was refused" in log_path.read_text(), 10)
            polls = len(feed.requests)
            # a few more ticks, in each of which the old code logged a traceback
            assert wait_for(lambda: len(feed.requests) >= polls + 3, 30)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            feed.close()
    logged = log_path.read_text()
    assert "Traceback" not in logged and "RecursionError" not in logged
    refused = [ln for ln in logged.splitlines() if "nested more than 100 levels" in ln]
    assert len(refused) == 1 and f"{rules}:3:113:" in refused[0]
    assert logged.count("changed but was refused") == 1


# -- unknown channels under alerts: --------------------------------------------------

def test_unknown_channels_under_alerts_are_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, rules_yaml("missile"),
                alerts={"delivery_failures": ["file", "ghost"], "feed_health": ["phantom"]})
    result = run_watcher("check", "--config", cfg)
    assert result.returncode == 2
    assert "alerts.delivery_failures[1]: unknown channel 'ghost' (known: file)" in result.stderr
    assert "alerts.feed_health[0]: unknown channel 'phantom' (known: file)" in result.stderr
    assert "ok" not in result.stdout.split()


def test_an_unusable_channel_under_alerts_is_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, rules_yaml("missile"), alerts={"feed_health": ["ops"]})
    data = yaml.safe_load(Path(cfg).read_text())
    data["channels"]["ops"] = {"type": "webhook", "url": "${WATCHER_TEST_UNSET_HOOK}"}
    Path(cfg).write_text(yaml.safe_dump(data))
    result = run_watcher("check", "--config", cfg)
    assert result.returncode == 2
    assert ("alerts.feed_health[0]: channel 'ops' cannot be used: environment variable "
            "WATCHER_TEST_UNSET_HOOK is not set") in result.stderr


# -- --config and -v before or after the command -------------------------------------

@pytest.mark.parametrize("order", ["before", "after", "split"])
def test_config_and_verbose_go_before_or_after_the_command(tmp_path: Path, order: str) -> None:
    cfg = write(tmp_path, rules_yaml("missile"))
    args = {"before": ("--config", cfg, "-v", "check"),
            "after": ("check", "--config", cfg, "-v"),
            "split": ("-v", "check", "--config", cfg)}[order]
    result = run_watcher(*args)
    assert result.returncode == 0, result.stderr
    assert f"config: {Path(cfg).resolve()}" in result.stdout  # not ./config/watcher.yaml


@pytest.mark.parametrize("argv", [
    ["--config", "a.yaml", "-v", "feeds", "list"], ["feeds", "list", "-v", "--config", "a.yaml"],
    ["-v", "feeds", "--config", "a.yaml", "list"], ["--config", "a.yaml", "deliveries", "-v"],
])
def test_options_before_or_after_reach_every_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert (args.config, args.verbose) == ("a.yaml", True)
    bare = build_parser().parse_args([a for a in argv if a not in ("-v", "--config", "a.yaml")])
    assert (bare.config, bare.verbose) == (None, False)


# -- endless titles --------------------------------------------------------------------

def test_a_megabyte_title_is_capped_in_logs_and_alerts_but_stored_whole(
        tmp_path: Path) -> None:
    title = "Tactical missile " + "x" * 1_000_000
    site = LoopbackServer()
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": "1", "title": title, "content_text": "A tactical missile was shown."}]}
    site.routes["/feed.json"] = (200, {"Content-Type": "application/feed+json"},
                                 json.dumps(feed).encode())
    try:
        cfg = write(tmp_path, yaml.safe_dump({"rules": [
            {"name": "m", "any": ["tactical missile"], "notify": ["file", "screen"]}]}),
            feeds=[{"name": "big", "url": site.url("/feed.json"), "allow_private": True}],
            channels={"file": {"type": "jsonl", "path": "out/alerts.jsonl"},
                      "screen": {"type": "console"}})
        run = run_watcher("run", "--once", "--config", cfg)
    finally:
        site.close()
    assert run.returncode == 0, run.stderr[-2000:]
    assert "match: rule 'm' fired on 'Tactical missile xxx" in run.stderr
    assert max(len(ln) for ln in run.stderr.splitlines()) <= LOG_LINE_LIMIT + 40
    assert max(len(ln) for ln in run.stdout.splitlines()) <= 1000  # the console channel
    (record,) = [json.loads(ln) for ln in (tmp_path / "out" / "alerts.jsonl").open()]
    assert len(record["title"]) == ALERT_TITLE_LIMIT and record["title"].endswith("…")
    shown = json.loads(run_watcher("show", "1", "--json", "--config", cfg).stdout)
    assert shown["title"] == title


# -- rule YAML errors point at where the broken value starts ----------------------------

def test_an_unclosed_quote_is_reported_where_it_starts(tmp_path: Path) -> None:
    cfg = write(tmp_path, 'rules:\n  - name: x\n    query: "missile AND\n'
                          "    notify: [file]\n\n")
    for args, code in ((("rules", "check"), 1), (("check",), 2)):
        result = run_watcher(*args, "--config", cfg)
        assert result.returncode == code
        assert (f"{tmp_path / 'rules.yaml'}:3:12: invalid YAML: a quoted value starts here "
                "and is never closed") in result.stdout + result.stderr


def test_an_unclosed_bracket_is_reported_where_it_starts() -> None:
    with pytest.raises(RuleError, match=r"rules\.yaml:3:10: invalid YAML: a flow sequence "
                                        "starts here and is never closed"):
        parse_rules('rules:\n  - name: x\n    any: ["a", "b"\n')


# -- chat payloads: feed text is never markdown ----------------------------------------

_LINK = re.compile(r"(?<!\\)\[((?:[^\]\\]|\\.)*)(?<!\\)\]\(")


@pytest.mark.parametrize("title", ["[evil](http://evil.example/)",
                                   "look ![x](http://evil.example/p.png) **now**"])
def test_chat_payloads_escape_markdown_from_feeds(title: str) -> None:
    a = alert(1, title=title, snippet=f"{title} a tactical missile",
              url="https://news.example.org/1")
    discord = discord_payload(a)
    texts = [discord["content"], discord["embeds"][0]["title"],
             discord["embeds"][0]["description"]]
    assert all(not _LINK.search(t) for t in texts), texts
    assert "**tactical missile**" in discord["embeds"][0]["description"]
    for payload in (teams_payload(a), {"body": [{"text": ntfy_payload(a, "t")["message"]}]}):
        body = payload.get("body") or payload["attachments"][0]["content"]["body"]
        links = [m.group(1) for b in body for m in _LINK.finditer(b["text"])]
        # only our own link, around the escaped title
        assert links == [re.sub(r"([\\`*_~|\[\]<>#])", r"\\\1", title)], links


def test_a_link_target_from_a_feed_cannot_end_the_link_early() -> None:
    card = teams_payload(alert(1, title="t", url="https://x.example/a) [b](http://evil/"))
    text = card["attachments"][0]["content"]["body"][1]["text"]
    assert text.startswith("[t](https://x.example/a%29%20[b]%28http://evil/)\n")


def test_a_hundred_thousand_parentheses_are_refused_too() -> None:
    with pytest.raises(RuleError, match="nested more than 100 levels deep"):
        parse_rules(rules_yaml("(" * 100_000 + "a" + ")" * 100_000), channels=["file"])
