"""Sitemaps (sitemaps.org) and news sitemaps (Google's news extension), read as a stream.

A sitemap is hostile input like a feed, and a big one: up to 50,000 URLs by the
protocol, and nothing keeps a site from sending millions. So it is parsed while it
arrives (lxml's pull parser, the elements already read dropped), cut at a count of
URLs, and refused when it declares entities. Decompressing and the byte cap are the
fetcher's; this module only ever sees the decoded bytes, in chunks.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, NamedTuple
from urllib.parse import urljoin, urlsplit

from watcher.core.errors import ParseError
from watcher.core.models import Entry

if TYPE_CHECKING:
    from lxml import etree

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_TAIL = len(b"<!ENTITY") - 1  # kept from a chunk so a split declaration is still seen
_WANTED = ("{*}url", "{*}sitemap")
# Where a site keeps its sitemaps when robots.txt names none; news ones are the richer.
USUAL_PLACES = ("/sitemap.xml", "/sitemap_index.xml", "/news-sitemap.xml", "/sitemap_news.xml")
SitemapKind = Literal["urlset", "index"]


@dataclass(frozen=True)
class SitemapLimits:
    """How far one poll follows a site's sitemaps."""

    max_depth: int = 2  # index -> index -> urlset
    max_files: int = 50  # sitemaps fetched per poll
    max_urls: int = 50_000  # URLs read from one sitemap (the protocol's own limit)


class SitemapUrl(NamedTuple):
    """A <url> of a urlset, or a <sitemap> of an index (then only loc and when)."""

    loc: str
    when: datetime | None  # news:publication_date, else lastmod
    title: str = ""
    keywords: str = ""
    language: str | None = None


@dataclass
class Sitemap:
    """One sitemap document read: a urlset's pages or an index's sitemaps."""

    url: str
    kind: SitemapKind | None = None  # None: the document is not a sitemap
    urls: list[SitemapUrl] = field(default_factory=list)  # a urlset's pages, an index's maps
    cut: bool = False  # stopped at the URL cap


def w3c_datetime(value: str | None) -> datetime | None:
    """A W3C datetime (2026-05-01, 2026-05-01T12:00Z, ...+02:00) in UTC; None if not one."""
    if not value:
        return None
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


_LOCAL: dict[object, str] = {}  # a sitemap uses a handful of tags: names cached


def _local(tag: object) -> str:
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rpartition("}")[2] if isinstance(tag, str) else ""
        if len(_LOCAL) < 1000:
            _LOCAL[tag] = name
    return name


def _kind(root: etree._Element | None) -> SitemapKind | None:
    name = _local(root.tag) if root is not None else ""
    return "urlset" if name == "urlset" else "index" if name == "sitemapindex" else None


def _news(el: etree._Element) -> tuple[str, str, str | None, str | None]:
    """title, keywords, language, publication date of a <news:news> element."""
    title = keywords = ""
    language = published = None
    local = _LOCAL.get
    for child in el:
        name = local(child.tag) or _local(child.tag)
        if name == "title":
            title = (child.text or "").strip()
        elif name == "keywords":
            keywords = (child.text or "").strip()
        elif name == "publication_date":
            published = child.text
        elif name == "publication":
            for part in child:
                if (local(part.tag) or _local(part.tag)) == "language":
                    language = (part.text or "").strip() or None
    return title, keywords, language, published


def _item(el: etree._Element, base: str) -> SitemapUrl | None:
    # Children walked once, names looked up in a dict: lxml's find() with a
    # namespace wildcard costs several times more per URL.
    loc = lastmod = None
    news = None
    local = _LOCAL.get
    for child in el:
        name = local(child.tag) or _local(child.tag)
        if name == "loc":
            loc = (child.text or "").strip()
        elif name == "lastmod":
            lastmod = child.text
        elif name == "news":
            news = child
    if not loc:
        return None
    if not loc.startswith(("https://", "http://")):
        loc = urljoin(base, loc)
    if news is None:
        return SitemapUrl(loc, w3c_datetime(lastmod))
    title, keywords, language, published = _news(news)
    return SitemapUrl(loc, w3c_datetime(published) or w3c_datetime(lastmod), title, keywords,
                      language)


class SitemapReader:
    """Takes a sitemap's decoded bytes chunk by chunk; `feed` says whether to go on."""

    def __init__(self, url: str, max_urls: int) -> None:
        self.sitemap = Sitemap(url)
        self._max = max_urls
        self._tail = b""
        self._started = False
        from lxml import etree  # here: a daemon without sitemap sources never loads it

        self._parser = etree.XMLPullParser(
            events=("end",), tag=_WANTED, resolve_entities=False, no_network=True,
            load_dtd=False, huge_tree=False, recover=True, remove_comments=True,
            remove_pis=True)

    def feed(self, chunk: bytes) -> bool:
        """Parse one more chunk; False once the URL cap is reached (read no further)."""
        if not self._started and chunk:
            self._started = True
            head = chunk[:4]
            if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head:
                # The protocol says UTF-8; a wide encoding would also hide <!ENTITY
                # from the byte search below.
                raise ParseError(f"parse: sitemap {self.sitemap.url} is not UTF-8; refused")
        if _ENTITY_DECL.search(self._tail + chunk):
            raise ParseError(f"parse: sitemap {self.sitemap.url} declares XML entities; "
                             "refused")
        self._tail = chunk[-_TAIL:]
        self._parser.feed(chunk)
        return self._drain()

    def close(self) -> Sitemap:
        if not self.sitemap.cut:
            # recover=True: what could be read was read, and that is what is kept
            root = None
            from lxml import etree

            with contextlib.suppress(etree.XMLSyntaxError):
                root = self._parser.close()
            self._drain()
            if self.sitemap.kind is None:
                self.sitemap.kind = _kind(root)
        return self.sitemap

    def _drain(self) -> bool:
        sm = self.sitemap
        for _, el in self._parser.read_events():
            parent = el.getparent()
            if parent is None or parent.getparent() is not None:
                continue  # a <url> of some extension, nested deeper
            if sm.kind is None:
                sm.kind = _kind(parent)
                if sm.kind is None:
                    continue
            item = _item(el, sm.url)
            # Drop what was read: memory stays flat however long the sitemap is.
            el.clear()
            while el.getprevious() is not None:
                del parent[0]
            if item is None:
                continue
            if len(sm.urls) >= self._max:
                sm.cut = True
                return False
            sm.urls.append(item)
        return True


def parse_sitemap(body: bytes, url: str, max_urls: int = 50_000,
                  chunk: int = 65536) -> Sitemap:
    """A whole sitemap already in memory (tests, benchmarks)."""
    reader = SitemapReader(url, max_urls)
    for i in range(0, len(body), chunk):
        if not reader.feed(body[i:i + chunk]):
            break
    return reader.close()


def robots_sitemaps(text: str, base: str) -> list[str]:
    """The `Sitemap:` lines of a robots.txt, news sitemaps first."""
    found: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "sitemap" and value.strip():
            url = urljoin(base, value.strip())
            if url not in found and urlsplit(url).scheme in ("http", "https"):
                found.append(url)
    return sorted(found, key=lambda u: "news" not in u.lower())


def is_site(url: str) -> bool:
    """A site's address (https://example.com/), not a sitemap's."""
    return urlsplit(url).path in ("", "/")


def newest_first(items: Iterable[SitemapUrl], since: datetime) -> list[SitemapUrl]:
    """An index's sitemaps worth reading: changed since `since` (or undated), newest
    first, so a cap on how many are read keeps the fresh ones."""
    kept = [i for i in items if i.when is None or i.when >= since]
    return sorted(kept, key=lambda i: (i.when is not None, i.when or since), reverse=True)


def sitemap_entries(urls: Iterable[SitemapUrl], since: datetime) -> list[Entry]:
    """The pages dated at or after `since`, one entry per URL (its newest date).

    An undated URL is never taken: without a date, a site's whole archive would
    look new.
    """
    newest: dict[str, SitemapUrl] = {}
    for u in urls:
        if u.when is None or u.when < since:
            continue
        old = newest.get(u.loc)
        if old is None or (old.when is not None and u.when > old.when):
            newest[u.loc] = u
    return [Entry(entry_id=u.loc, link=u.loc, title=u.title, summary=u.keywords, content="",
                  published=u.when, language=u.language)
            for u in sorted(newest.values(), key=lambda u: u.when or since, reverse=True)]


def since_for(last_poll: datetime | None, now: datetime, backfill: timedelta) -> datetime:
    """The oldest date a poll takes: `backfill` before the last poll (a page is often
    listed a while after the date it carries), or before now on the first poll."""
    return (last_poll or now) - backfill
