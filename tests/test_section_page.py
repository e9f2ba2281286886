"""Page sources: a section page's new article links, between polls, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.servers import LoopbackServer
from tests.test_sitemap import Clock, context, page, poll, titles
from watcher.core.models import Feed
from watcher.extract.links import article_links, looks_like_article


def section(base: str, stories: list[tuple[str, str]]) -> bytes:
    items = "".join(f'<li><a href="{href}">{title}</a></li>' for href, title in stories)
    return f"""<html><head><title>World</title></head><body>
<header><a href="/2026/05/01/header-promo-story">Promo</a></header>
<nav class="main-nav"><a href="/world/">World</a><a href="/sport/football-news-now">S</a></nav>
<div id="sidebar"><a href="/2026/04/30/most-read-old-story">Most read</a></div>
<main><ul class="stories">{items}</ul>
<a href="/tag/missiles">Missiles</a> <a href="/category/world/asia">Asia</a>
<a href="/2026/05/01/report.pdf">PDF</a> <a href="https://elsewhere.test/2026/05/01/x-y-z">x</a>
<a href="/about">About</a> <a href="/login?next=/world/">Log in</a>
<a href="{base}/world/#top">Top</a></main>
<footer><a href="/2026/05/01/footer-story-link">Footer</a></footer></body></html>""".encode()


STORIES = [("/2026/05/01/army-shows-missile", "Army shows missile"),
           ("/world/asia/tram-line-opens-in-the-city", "Tram line opens"),
           ("/news/world-1234567", "Numbered story")]


def test_article_links_skip_navigation_boilerplate_and_other_sites() -> None:
    base = "https://news.test"
    links = article_links(section(base, STORIES), f"{base}/world/")
    assert links == [(f"{base}{href}", title) for href, title in STORIES]
    only = article_links(section(base, STORIES), f"{base}/world/", pattern=r"/20\d\d/")
    assert [u for u, _ in only] == [f"{base}/2026/05/01/army-shows-missile"]
    chosen = article_links(section(base, STORIES), f"{base}/world/", selector="ul.stories li")
    assert [u for u, _ in chosen] == [f"{base}{href}" for href, _ in STORIES]
    assert looks_like_article(f"{base}/2026-05-01/anything")
    assert not looks_like_article(f"{base}/world/asia")
    assert article_links(b"", f"{base}/") == []


@pytest.fixture
def site() -> Iterator[LoopbackServer]:
    server = LoopbackServer()
    yield server
    server.close()


def test_a_section_page_that_gains_two_links_alerts_on_those_two_only(
        tmp_path: Path, site: LoopbackServer) -> None:
    base = site.url("")
    stories = list(STORIES)
    site.routes["/world/"] = lambda req: (200, {"Content-Type": "text/html"},
                                          section(base, stories))
    for href, title in STORIES:
        site.routes[href] = page(title, "Nothing to see here today")
    clock = Clock()
    ctx = context(tmp_path, clock)
    feed = Feed(name="world", url=site.url("/world/"), interval_s=600, allow_private=True,
                kind="page")
    first = poll(feed, ctx)
    assert first.ok and first.new_articles == 0 and titles(ctx) == []  # recorded only
    assert not [r for r in site.requests if r.path != "/world/"]

    stories[:0] = [("/2026/05/02/a-tactical-missile-test", "A tactical missile test"),
                   ("/world/europe/ferry-strike-ends-after-talks", "Ferry strike ends")]
    site.routes["/2026/05/02/a-tactical-missile-test"] = page(
        "A tactical missile test", "The army tested a tactical missile")
    site.routes["/world/europe/ferry-strike-ends-after-talks"] = page(
        "Ferry strike ends", "The ferry strike ended after talks")
    clock.now += timedelta(minutes=10)
    second = poll(feed, ctx)
    assert second.ok and second.new_articles == 2 and second.matches == 1
    assert titles(ctx) == ["A tactical missile test", "Ferry strike ends"]

    clock.now += timedelta(minutes=10)
    third = poll(feed, ctx)
    assert third.ok and third.new_articles == 0
    ctx.store.close()
