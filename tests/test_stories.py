"""One alert per story, not per copy (issue 8), over a corpus of our own on loopback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import yaml

from tests.conftest import run_watcher
from tests.servers import LoopbackServer, WebhookReceiver
from tests.stories import (
    OTHER,
    OTHER_TITLE,
    PRESS_STATEMENTS,
    WIRE,
    WIRE_TITLE,
    page,
    press_statement,
)


def rss(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(f"<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
                   f"<description>{t}</description></item>" for g, t, link in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>x'
            f"</title>{body}</channel></rss>").encode()


def serve(server: LoopbackServer, path: str, data: bytes, ctype: str = "text/html") -> None:
    server.routes[path] = (200, {"Content-Type": ctype}, data)


def test_one_alert_per_story_across_feeds_and_variants(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    s = LoopbackServer()
    try:
        base = s.url("")
        agency_url = f"{base}/wire/kim-inspects-missile"
        # The agency's original, with its own canonical link.
        serve(s, "/wire/kim-inspects-missile", page(WIRE_TITLE, WIRE, "Wire",
                                                   canonical=agency_url))
        # Paper 1 reprints it under another headline, in its own page chrome.
        serve(s, "/paper1/world/kim-missile", page(
            "North Korea shows off new tactical missile; Seoul on alert", WIRE, "Paper One",
            extra_boilerplate="<div class='promo'>Subscribe for 1 euro a week. Our weekend "
                              "edition, puzzles and podcasts, delivered.</div>"))
        # Paper 2 cuts a paragraph.
        serve(s, "/paper2/kim", page(WIRE_TITLE, WIRE[:4] + WIRE[5:], "Paper Two"))
        # A different story about the same event.
        serve(s, "/paper2/seoul-alert", page(OTHER_TITLE, OTHER, "Paper Two"))

        serve(s, "/agency.xml", rss([("wire-1", WIRE_TITLE, agency_url)]), "application/rss+xml")
        serve(s, "/paper1.xml", rss([("p1-77", "North Korea shows off new tactical missile; "
                                      "Seoul on alert", f"{base}/paper1/world/kim-missile")]),
              "application/rss+xml")
        serve(s, "/paper2.xml", rss([("p2-5", WIRE_TITLE, f"{base}/paper2/kim"),
                                     ("p2-6", OTHER_TITLE, f"{base}/paper2/seoul-alert")]),
              "application/rss+xml")
        # The aggregator links to the agency's page with tracking parameters.
        serve(s, "/aggregator.xml", rss([(
            "agg-1", "Kim inspects missile system",
            f"{agency_url}?utm_source=agg&utm_medium=rss&fbclid=xyz#top")]),
            "application/rss+xml")

        feeds = [{"name": n, "url": f"{base}/{n}.xml", "allow_private": True}
                 for n in ("agency", "paper1", "paper2", "aggregator")]
        cfg = {"database": "w.db", "rules": "rules.yaml", "feeds": feeds,
               "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")},
                            "file": {"type": "jsonl", "path": "alerts.jsonl"}}}
        (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
            {"name": "tactical-missile", "query": '"tactical missile"',
             "notify": ["hook", "file"]},
            {"name": "seoul-on-alert", "query": 'title:"Seoul on alert"', "notify": ["hook"]},
        ]}))
        args = ("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
        first = run_watcher(*args)
        assert first.returncode == 0, first.stderr

        # Later: the agency re-publishes its item under a new guid after an edit.
        serve(s, "/agency.xml", rss([("wire-1-v2", WIRE_TITLE + " (updated)", agency_url),
                                     ("wire-1", WIRE_TITLE, agency_url)]),
              "application/rss+xml")
        second = run_watcher(*args)
        assert second.returncode == 0, second.stderr

        payloads = [r.json() for r in receiver.accepted]
        by_rule: dict[str, list[str]] = {}
        for p in payloads:
            by_rule.setdefault(p["rule"], []).append(p["article"]["title"])
        # One alert for the wire story whatever its copies (titled after whichever copy
        # arrived first: feeds are polled concurrently), one for the other story.
        wire_titles = {WIRE_TITLE, "North Korea shows off new tactical missile; Seoul on alert",
                       "Kim inspects missile system"}
        fired = by_rule["tactical-missile"]
        assert len(fired) == 2 and OTHER_TITLE in fired, by_rule
        assert len([t for t in fired if t in wire_titles]) == 1, by_rule
        # The re-headlined copy matched a rule the story had not matched: a new alert.
        assert by_rule["seoul-on-alert"] == ["North Korea shows off new tactical missile; "
                                             "Seoul on alert"]
        assert len({r.headers["webhook-id"] for r in receiver.accepted}) == len(payloads)
        # The alert says where else the story ran ("also reported by").
        wire_alert = next(p for p in payloads if p["rule"] == "tactical-missile"
                          and p["article"]["title"] in wire_titles)
        others = {src["feed"] for src in wire_alert["article"]["sources"]}
        assert len(others) >= 2 and others <= {"agency", "paper1", "paper2", "aggregator"}
        records = [json.loads(x) for x in (tmp_path / "alerts.jsonl").read_text().splitlines()]
        assert len(records) == 2

        with sqlite3.connect(tmp_path / "w.db") as db:
            stories = db.execute("SELECT count(DISTINCT story_id) FROM articles").fetchone()[0]
            sources = db.execute("SELECT count(*) FROM article_sources").fetchone()[0]
            # Whichever copy came first holds the story; the agency's entry is one of them.
            wire_story = db.execute(
                "SELECT a.story_id FROM article_sources s JOIN articles a "
                "ON a.id = s.article_id WHERE s.entry_id = 'wire-1'").fetchone()[0]
        assert stories == 2
        assert sources == 6  # agency x2, paper1, paper2 x2, aggregator

        shown = run_watcher("show", str(wire_story), "--json", "--config",
                            str(tmp_path / "watcher.yaml"))
        record = json.loads(shown.stdout)
        assert {src["feed"] for src in record["sources"]} == {"agency", "paper1", "paper2",
                                                              "aggregator"}
        assert {src["entry_id"] for src in record["sources"]} >= {"wire-1", "wire-1-v2",
                                                                  "agg-1", "p1-77", "p2-5"}
    finally:
        s.close()


def test_a_sites_boilerplate_does_not_fold_its_different_statements(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    """Six press statements sharing the office's standard paragraph are six alerts;
    one wire story reprinted by four other sites (re-headlined, a paragraph cut) is one."""
    office = LoopbackServer(host="127.0.0.2")
    sites = [LoopbackServer(host=f"127.0.0.{3 + i}") for i in range(4)]
    try:
        items = []
        for i, (title, _) in enumerate(PRESS_STATEMENTS):
            serve(office, f"/statements/{i}", page(title, press_statement(i), "Vellmark DPA"))
            items.append((f"dpa-{i}", title, office.url(f"/statements/{i}")))
        serve(office, "/feed.xml", rss(items), "application/rss+xml")
        variants = [(WIRE_TITLE, WIRE), ("North Korea unveils tactical missile system", WIRE),
                    (WIRE_TITLE, WIRE[:3] + WIRE[4:]),
                    ("Kim tours missile units as arms output rises", WIRE[:-1])]
        for n, (site, (title, paragraphs)) in enumerate(zip(sites, variants, strict=True)):
            serve(site, "/world/kim", page(title, paragraphs, f"Paper {n}"))
            serve(site, "/feed.xml", rss([(f"p{n}-1", title, site.url("/world/kim"))]),
                  "application/rss+xml")
        feeds = [{"name": "dpa", "url": office.url("/feed.xml"), "allow_private": True}]
        feeds += [{"name": f"paper{n}", "url": s.url("/feed.xml"), "allow_private": True}
                  for n, s in enumerate(sites)]
        cfg = {"database": "w.db", "rules": "rules.yaml", "feeds": feeds,
               "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}}}
        (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
            {"name": "tactical-missile", "query": '"tactical missile"', "notify": ["hook"]}]}))
        result = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
        assert result.returncode == 0, result.stderr
        titles = [r.json()["article"]["title"] for r in receiver.accepted]
        statements = [t for t, _ in PRESS_STATEMENTS]
        assert sorted(t for t in titles if t in statements) == sorted(statements)
        assert len([t for t in titles if t not in statements]) == 1, titles
        with sqlite3.connect(tmp_path / "w.db") as db:
            assert db.execute("SELECT count(DISTINCT story_id) FROM articles").fetchone()[0] == 7
    finally:
        office.close()
        for s in sites:
            s.close()
