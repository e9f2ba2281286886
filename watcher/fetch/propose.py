"""The best source for a site, and why (`watcher feeds add URL`, the console's "add a feed").

Its advertised feed first (a feed carries text and dates); else its news sitemap
(every story, with title and date, but nothing else); else the page itself, as a
section page, when it links to articles.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml import html as lxml_html

from watcher.core.errors import FetchError, ParseError
from watcher.core.models import Feed, FetchResult, SourceKind
from watcher.core.parse import discover_feeds, looks_like_html, parse_feed
from watcher.core.sitemap import USUAL_PLACES, Sitemap, SitemapReader, robots_sitemaps
from watcher.extract.links import article_links
from watcher.fetch.client import Fetcher, HttpLimits

_NEWS_CHILDREN = 5  # of an index, the sitemaps looked into for news


@dataclass(frozen=True)
class Proposal:
    kind: SourceKind
    url: str
    title: str
    why: str  # what was found, said to the user


def _probe(url: str, allow_private: bool) -> Feed:
    return Feed(name="new-feed", url=url, interval_s=900, allow_private=allow_private)


async def _sitemap(fetcher: Fetcher, probe: Feed, url: str) -> Sitemap | None:
    reader = SitemapReader(url, 50_000)
    try:
        await fetcher.fetch_sitemap(probe, url, reader.feed)
        sitemap = reader.close()
    except (FetchError, ParseError):
        return None
    return sitemap if sitemap.kind is not None else None


def _is_news(sitemap: Sitemap) -> bool:
    return sitemap.kind == "urlset" and any(u.title for u in sitemap.urls[:50])


async def _news_sitemap(fetcher: Fetcher, url: str, allow_private: bool) -> str | None:
    """The site's news sitemap: named by robots.txt, or in one of the usual places, or
    one of the first sitemaps of an index found there."""
    parts = urlsplit(url)
    site = f"{parts.scheme}://{parts.netloc}"
    probe = _probe(site + "/", allow_private)
    named: list[str] = []
    try:
        robots = await fetcher.fetch_feed(probe, url=site + "/robots.txt")
        named = robots_sitemaps(robots.body.decode("utf-8", "replace"), robots.url)
    except FetchError:
        pass
    for candidate in named or [site + place for place in USUAL_PLACES]:
        sitemap = await _sitemap(fetcher, probe, candidate)
        if sitemap is None:
            continue
        if _is_news(sitemap):
            return candidate
        if sitemap.kind == "index":
            children = sorted(sitemap.urls, key=lambda u: "news" not in u.loc.lower())
            for child in children[:_NEWS_CHILDREN]:
                inner = await _sitemap(fetcher, probe, child.loc)
                if inner is not None and _is_news(inner):
                    return child.loc
    return None


def _page_title(result: FetchResult) -> str:
    try:
        title = lxml_html.fromstring(result.body).findtext(".//title") or ""
    except (ValueError, lxml_html.etree.ParserError):
        return ""
    return " ".join(title.split())


async def propose(url: str, allow_private: bool, limits: HttpLimits) -> Proposal:
    async with Fetcher(limits) as fetcher:
        result = await fetcher.fetch_feed(_probe(url, allow_private))
        try:
            parsed = parse_feed(result.body, result.headers, result.url)
            return Proposal("feed", result.permanent_redirect or url, parsed.title,
                            f"a feed with {len(parsed.entries)} items")
        except ParseError:
            if not looks_like_html(result.body, result.headers):
                raise
        errors = []
        for candidate in discover_feeds(result.body, result.url):
            try:
                found = await fetcher.fetch_feed(_probe(candidate, allow_private))
                parsed = parse_feed(found.body, found.headers, found.url)
                return Proposal("feed", candidate, parsed.title,
                                f"the feed the page advertises, {len(parsed.entries)} items")
            except (FetchError, ParseError) as exc:
                errors.append(str(exc))
        title = _page_title(result)
        news = await _news_sitemap(fetcher, result.url, allow_private)
        if news is not None:
            return Proposal("sitemap", news, title,
                            "the site's news sitemap (the page advertises no readable feed)")
        links = article_links(result.body, result.url)
        if links:
            return Proposal("page", result.url, title,
                            f"the page itself, {len(links)} article links on it (no readable "
                            "feed advertised, no news sitemap found)")
    raise ParseError(f"{url} is a web page that advertises no readable feed, its site has no "
                     "news sitemap, and it links to no articles"
                     + (f" ({'; '.join(errors)})" if errors else ""))
