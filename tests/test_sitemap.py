"""Sitemap sources: sitemaps and news sitemaps read for new pages, on loopback servers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_watcher
from tests.servers import LoopbackServer, Request, Response
from tests.sitemaps import (
    Counted,
    endless_urlset,
    gzip_bomb_stream,
    gzipped,
    index,
    news_sitemap,
    news_url,
    plain_url,
    urlset,
)
from watcher.core.errors import ParseError
from watcher.core.models import Feed
from watcher.core.sitemap import (
    SitemapLimits,
    SitemapReader,
    newest_first,
    parse_sitemap,
    robots_sitemaps,
    sitemap_entries,
    w3c_datetime,
)
from watcher.fetch.client import Fetcher, HttpLimits
from watcher.rules.load import parse_rules
from watcher.rules.match import compile_rules
from watcher.service.ingest import FeedOutcome, IngestContext
from watcher.service.sources import ingest_source
from watcher.store.sqlite import SqliteStore

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
RULES = """
rules:
  - name: missile
    any: ["tactical missile"]
    notify: [file]
"""


def page(title: str, text: str) -> Response:
    return 200, {"Content-Type": "text/html; charset=utf-8"}, (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        + f"<p>{text} </p>" * 12 + "</article></body></html>").encode()


# -- parsing ------------------------------------------------------------------------------

def test_a_news_sitemap_gives_title_keywords_language_and_publication_date() -> None:
    when = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    body = urlset([news_url("https://n.test/a", when, "Missile test", "defence, asia", "ko"),
                   plain_url("/relative/b", datetime(2026, 4, 2, tzinfo=UTC)),
                   plain_url("https://n.test/c", None)])
    sm = parse_sitemap(body, "https://n.test/sitemap.xml")
    assert sm.kind == "urlset" and not sm.cut
    a, b, c = sm.urls
    assert (a.loc, a.when, a.title, a.keywords, a.language) == (
        "https://n.test/a", when, "Missile test", "defence, asia", "ko")
    assert b.loc == "https://n.test/relative/b" and b.when == datetime(2026, 4, 2, tzinfo=UTC)
    assert c.when is None
    entries = sitemap_entries(sm.urls, datetime(2026, 4, 30, tzinfo=UTC))
    assert [e.link for e in entries] == ["https://n.test/a"]  # old and undated left out
    assert entries[0].summary == "defence, asia" and entries[0].language == "ko"


def test_indexes_robots_and_dates() -> None:
    sm = parse_sitemap(index([("https://n.test/new.xml", NOW), ("https://n.test/old.xml",
                                                                 NOW - timedelta(days=30)),
                              ("https://n.test/undated.xml", None)]), "https://n.test/i.xml")
    assert sm.kind == "index"
    kept = newest_first(sm.urls, NOW - timedelta(days=2))
    assert [u.loc for u in kept] == ["https://n.test/new.xml", "https://n.test/undated.xml"]
    assert parse_sitemap(b"<html><body>Not found</body></html>", "x").kind is None
    assert robots_sitemaps("User-agent: *\nDisallow: /x\nsitemap: /all.xml\n"
                           "Sitemap: https://n.test/news-sitemap.xml\nSitemap: ftp://x/y\n",
                           "https://n.test/robots.txt") == [
        "https://n.test/news-sitemap.xml", "https://n.test/all.xml"]
    assert w3c_datetime("2026-05-01T12:00Z") == NOW
    assert w3c_datetime("2026-05-01T14:00:00+02:00") == NOW
    assert w3c_datetime("yesterday") is None


@pytest.mark.parametrize("body", [
    b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "aaaa">]><urlset><url><loc>&a;</loc>'
    b"</url></urlset>",
    '<?xml version="1.0" encoding="UTF-16"?><urlset></urlset>'.encode("utf-16"),
])
def test_entities_and_wide_encodings_are_refused_before_parsing(body: bytes) -> None:
    with pytest.raises(ParseError, match="refused"):
        parse_sitemap(body, "https://n.test/s.xml")


def test_an_entity_declaration_split_across_chunks_is_still_seen() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY a "x">]><urlset/>'
    cut = body.index(b"TITY")
    reader = SitemapReader("https://n.test/s.xml", 10)
    reader.feed(body[:cut])
    with pytest.raises(ParseError, match="declares XML entities"):
        reader.feed(body[cut:])


def test_the_url_cap_stops_a_stream_that_never_ends() -> None:
    reader = SitemapReader("https://n.test/huge.xml", 5000)
    chunks = 0
    for chunk in endless_urlset():
        chunks += 1
        if not reader.feed(chunk):
            break
    sm = reader.close()
    assert sm.cut and len(sm.urls) == 5000 and chunks < 10


# -- polling ------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


def context(tmp_path: Path, clock: Clock, limits: HttpLimits | None = None,
            sitemaps: SitemapLimits | None = None) -> IngestContext:
    rules = compile_rules(parse_rules(RULES, channels=["file"]))
    return IngestContext(fetcher=Fetcher(limits), store=SqliteStore(tmp_path / "w.db"),
                         rules=lambda: rules, channels_by_rule=lambda: {"missile": ["file"]},
                         clock=clock, page_wait_s=5.0,
                         sitemaps=sitemaps or SitemapLimits())


def poll(feed: Feed, ctx: IngestContext) -> FeedOutcome:
    async def go() -> FeedOutcome:
        # a client (its connections) per event loop
        async with Fetcher(ctx.fetcher.limits) as fetcher:
            ctx.store.sync_feeds([feed])
            return await ingest_source(feed, replace(ctx, fetcher=fetcher))
    return asyncio.run(go())


def source(url: str, name: str = "site", **kw: object) -> Feed:
    return Feed(name=name, url=url, interval_s=600, allow_private=True, kind="sitemap", **kw)  # type: ignore[arg-type]


def conditional(body: bytes, etag: str, ctype: str = "application/xml") -> object:
    def handler(req: Request) -> Response:
        if req.headers.get("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"Content-Type": ctype, "ETag": etag}, body
    return handler


def titles(ctx: IngestContext) -> list[str]:
    rows = ctx.store._rows("SELECT title FROM articles ORDER BY title")  # type: ignore[attr-defined]
    return [r["title"] for r in rows]


def test_a_site_is_found_through_robots_and_its_sitemaps_read_conditionally(
        tmp_path: Path, site: LoopbackServer) -> None:
    clock = Clock()
    base = site.url("")
    news = [news_url(f"{base}/world/missile", NOW - timedelta(hours=1),
                     "Army shows a tactical missile"),
            news_url(f"{base}/world/archive", NOW - timedelta(days=10), "An old story")]
    site.routes.update({
        "/robots.txt": (200, {"Content-Type": "text/plain"},
                        f"User-agent: *\nSitemap: {base}/sitemap_index.xml\n".encode()),
        "/sitemap_index.xml": conditional(index([
            (f"{base}/news.xml.gz", NOW), (f"{base}/pages.xml", NOW),
            (f"{base}/2019.xml", datetime(2019, 12, 31, tzinfo=UTC))]), '"i1"'),
        "/news.xml.gz": conditional(gzipped(urlset(news)), '"n1"', "application/x-gzip"),
        "/pages.xml": conditional(urlset([
            plain_url(f"{base}/about/team", None),
            plain_url(f"{base}/local/tram", NOW - timedelta(hours=3))]), '"p1"'),
        "/world/missile": page("Army shows a tactical missile", "A tactical missile was shown"),
        "/local/tram": page("Tram line opens", "The new tram line opened on time"),
    })
    ctx = context(tmp_path, clock)
    feed = source(site.url("/"))
    first = poll(feed, ctx)
    assert first.ok and first.new_articles == 2 and first.matches == 1
    assert titles(ctx) == ["Army shows a tactical missile", "Tram line opens"]
    asked = [r.path for r in site.requests]
    assert "/2019.xml" not in asked  # an index's sitemaps older than the backfill: not read
    assert "/world/archive" not in asked and "/about/team" not in asked

    clock.now = NOW + timedelta(minutes=10)
    site.requests.clear()
    again = poll(feed, ctx)
    assert again.ok and again.new_articles == 0
    sitemap_asks = [r for r in site.requests if r.path.endswith((".xml", ".gz"))]
    assert sorted(r.path for r in sitemap_asks) == ["/news.xml.gz", "/pages.xml",
                                                    "/sitemap_index.xml"]
    assert all(r.headers.get("if-none-match") for r in sitemap_asks)  # each conditional
    assert "/robots.txt" not in [r.path for r in site.requests]  # remembered

    news.append(news_url(f"{base}/world/second", NOW + timedelta(minutes=5),
                         "A second tactical missile"))
    site.routes["/news.xml.gz"] = conditional(gzipped(urlset(news)), '"n2"',
                                              "application/x-gzip")
    site.routes["/world/second"] = page("A second tactical missile", "Another tactical missile")
    clock.now = NOW + timedelta(minutes=20)
    third = poll(feed, ctx)
    assert third.new_articles == 1 and third.matches == 1
    state = ctx.store.feed_state("site")
    assert state is not None and state.consecutive_failures == 0
    ctx.store.close()


def test_a_site_without_robots_is_looked_for_in_the_usual_places(
        tmp_path: Path, site: LoopbackServer) -> None:
    base = site.url("")
    site.routes.update({
        "/sitemap.xml": (200, {"Content-Type": "text/html"}, b"<html>soft 404</html>"),
        "/sitemap_news.xml": (200, {"Content-Type": "application/xml"}, urlset([
            news_url(f"{base}/a", NOW - timedelta(minutes=5), "A tactical missile again")])),
        "/a": page("A tactical missile again", "tactical missile"),
    })
    clock = Clock()
    ctx = context(tmp_path, clock)
    outcome = poll(source(site.url("/")), ctx)
    assert outcome.ok and outcome.matches == 1
    # The site moves its sitemap: the one remembered is gone, it is looked for afresh.
    del site.routes["/sitemap_news.xml"]
    site.routes["/robots.txt"] = (200, {}, f"Sitemap: {base}/moved.xml\n".encode())
    site.routes["/moved.xml"] = (200, {}, urlset([
        news_url(f"{base}/b", NOW + timedelta(minutes=5), "Moved but found")]))
    site.routes["/b"] = page("Moved but found", "tactical missile")
    clock.now += timedelta(minutes=10)
    moved = poll(source(site.url("/")), ctx)
    assert moved.ok and moved.new_articles == 1
    nothing = LoopbackServer()
    try:
        failed = poll(source(nothing.url("/"), name="bare"), ctx)
        assert not failed.ok and "found no sitemap" in (failed.error or "")
    finally:
        nothing.close()
    ctx.store.close()


def test_fifty_thousand_news_urls_are_read_and_only_the_recent_ones_taken(
        tmp_path: Path, site: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    # one URL every 3 s back from now: 50,000 span 41 h; a 30-minute backfill takes 600
    base = site.url("")
    site.routes["/news.xml"] = (200, {"Content-Type": "application/xml"},
                                news_sitemap(50_000, NOW, base))
    ctx = context(tmp_path, Clock())
    caplog.set_level(logging.INFO, "watcher")
    feed = source(site.url("/news.xml"), backfill_s=1800.0)
    outcome = poll(feed, replace(ctx, fetch_pages=False))
    assert outcome.ok and outcome.new_articles == 601
    assert "50000 URLs" in caplog.text and "more than" not in caplog.text
    ctx.store.close()


def test_hostile_sitemaps_cost_only_themselves(
        tmp_path: Path, site: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    base = site.url("")
    huge, bomb = Counted(endless_urlset(base=base)), Counted(gzip_bomb_stream(1000))
    site.routes.update({
        "/index.xml": (200, {}, index([(f"{base}/{n}.xml", NOW) for n in
                                       ("huge", "bomb", "laughs", "loop", "good")])),
        "/huge.xml": (200, {"Content-Type": "application/xml"}, huge),
        "/bomb.xml": (200, {"Content-Type": "application/x-gzip"}, bomb),
        "/laughs.xml": (200, {}, b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY l "lol">]>'
                                 b"<urlset><url><loc>&l;</loc></url></urlset>"),
        "/loop.xml": (200, {}, index([(f"{base}/index.xml", NOW)])),
        "/good.xml": (200, {}, urlset([
            news_url(f"{base}/ok", NOW, "A tactical missile"),
            news_url("http://169.254.169.254/latest/meta-data/", NOW, "Metadata")])),
        "/ok": page("A tactical missile", "tactical missile shown"),
    })
    caplog.set_level(logging.INFO, "watcher")
    ctx = context(tmp_path, Clock(), HttpLimits(max_sitemap_bytes=2_000_000),
                  SitemapLimits(max_urls=20_000))
    outcome = poll(source(site.url("/index.xml")), ctx)
    assert outcome.ok and outcome.new_articles == 2 and outcome.matches == 1
    assert f"sitemap {base}/huge.xml lists more than 20000 URLs" in caplog.text
    assert huge.produced < 1000  # of 10,000 chunks: the client hung up
    assert f"sitemap {base}/bomb.xml: body over the 2000000 byte cap" in caplog.text
    assert bomb.produced < 100  # of a 1 GB bomb
    assert "laughs.xml declares XML entities" in caplog.text
    assert f"lists {base}/index.xml, already read this poll (a loop)" in caplog.text
    assert next(e for e in outcome.page_errors if "169.254.169.254" in e).endswith(
        "is not public; refused")
    ctx.store.close()


def test_private_addresses_are_refused_unless_the_config_trusts_them(
        tmp_path: Path, site: LoopbackServer) -> None:
    site.routes["/news.xml"] = (200, {}, urlset([]))
    ctx = context(tmp_path, Clock())
    feed = Feed(name="public", url=site.url("/news.xml"), interval_s=600, kind="sitemap")
    outcome = poll(feed, ctx)
    assert not outcome.ok and "127.0.0.1" in (outcome.error or "")
    assert not site.requests  # refused before connecting
    ctx.store.close()


# -- end to end ---------------------------------------------------------------------------

def test_a_story_only_in_a_news_sitemap_fires_its_rule(tmp_path: Path,
                                                       site: LoopbackServer) -> None:
    now = datetime.now(UTC)
    base = site.url("")
    site.routes.update({
        "/robots.txt": (200, {}, f"Sitemap: {base}/news-sitemap.xml\n".encode()),
        "/news-sitemap.xml": (200, {"Content-Type": "application/xml"}, urlset([
            news_url(f"{base}/2026/05/01/drill", now - timedelta(minutes=20),
                     "Navy drill off the coast", "defence"),
            news_url(f"{base}/2020/01/01/old", now - timedelta(days=400),
                     "An old tactical missile story")])),
        "/2026/05/01/drill": page("Navy drill off the coast",
                                  "The navy fired a tactical missile during the drill"),
        "/2020/01/01/old": page("An old tactical missile story", "tactical missile"),
    })
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump({
        "database": "watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "coast-news", "url": site.url("/"), "type": "sitemap",
                   "allow_private": True}],
        "channels": {"file": {"type": "jsonl", "path": "alerts.jsonl"}}}))
    (tmp_path / "rules.yaml").write_text(RULES)
    run = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
    assert run.returncode == 0, run.stderr
    alerts = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert [(a["rule"], a["title"], a["feed"]) for a in alerts] == [
        ("missile", "Navy drill off the coast", "coast-news")]
