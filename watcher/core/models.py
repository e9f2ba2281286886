"""Plain frozen data passed between the stages of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

SourceKind = Literal["feed", "sitemap", "page"]
TextSource = Literal["page", "feed-content", "feed-summary", "none"]
DeliveryStatus = Literal["pending", "retrying", "sent", "dead"]
FIELDS: tuple[str, ...] = ("title", "summary", "body")


@dataclass(frozen=True)
class Feed:
    """A feed as the operator configured it."""

    name: str
    url: str
    interval_s: float
    tags: tuple[str, ...] = ()
    allow_private: bool = False
    min_interval_s: float = 120.0
    max_interval_s: float = 3600.0
    adaptive: bool = True
    # where its articles are listed: a feed, a site's sitemaps, or a section page
    kind: SourceKind = "feed"
    # a sitemap or page source's first poll takes what is at most this old
    backfill_s: float = 2 * 86400.0
    links: str | None = None  # a page source: CSS selector of the article links
    pattern: str | None = None  # a page source: regular expression the links match


@dataclass(frozen=True)
class FeedState:
    """What the store remembers about a feed between polls."""

    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    next_poll_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    # what a sitemap or page source remembered from its last poll (JSON, see
    # watcher.service.sources); None for a feed, or before the first poll
    memo: str | None = None
    paused: bool = False  # paused from the console: neither polled nor pushed


@dataclass(frozen=True)
class Undecoded:
    """A body kept as it came over the wire (a compressed page handed to an
    extraction worker): whoever decodes it stops at `cap` bytes, and names `what`."""
    coding: str
    cap: int
    what: str


@dataclass(frozen=True)
class FetchResult:
    """A response as the fetcher hands it on: final URL, status, headers and body."""

    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    not_modified: bool = False
    # set when every hop to the final URL was a 301 or 308: the feed moved
    permanent_redirect: str | None = None
    # set when `body` is still encoded (fetch_page(..., decode=False))
    undecoded: Undecoded | None = None

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


@dataclass(frozen=True)
class Entry:
    """One item of a parsed feed."""

    entry_id: str
    link: str | None
    title: str
    summary: str
    content: str
    published: datetime | None
    author: str | None = None
    language: str | None = None  # as the source declares it (a news sitemap)


@dataclass(frozen=True)
class ParsedFeed:
    """A feed document read: its title, its entries and how often it says to poll."""

    title: str
    entries: tuple[Entry, ...]
    ttl_minutes: int | None = None
    sy_period_s: float | None = None  # RSS syndication module: seconds between updates
    hub: str | None = None  # WebSub: the hub the feed names (rel="hub")
    topic: str | None = None  # WebSub: the feed's own URL (rel="self")


@dataclass(frozen=True)
class Extracted:
    """What trafilatura found in a page."""

    text: str
    title: str | None = None
    author: str | None = None
    date: str | None = None
    language: str | None = None
    sitename: str | None = None
    canonical: str | None = None  # the page's <link rel="canonical">, untrusted
    # the text the article keeps (this page's or the feed's), chosen and signed where
    # the page was extracted, when the feed's text came along (see watcher.extract)
    kept: ArticleText | None = None


@dataclass(frozen=True)
class ArticleText:
    """The text an article keeps, where it came from, and its MinHash signature
    (None: too short to compare). Made once per article, where the text is final."""

    body: str
    source: TextSource
    signature: bytes | None = None


@dataclass(frozen=True)
class StoryRef:
    """A story, named by its first article: the id, and the feed entry it came from.

    The entry (not the id) names the story's deliveries, so a delivery id stays the
    same in any database that holds the story (see watcher.core.alerts).
    """

    id: int
    feed: str
    entry_id: str


@dataclass(frozen=True)
class Article:
    """An entry with the text chosen for it (page, feed content or summary), as stored
    and matched."""

    feed: str
    entry_id: str
    url: str | None
    title: str
    summary: str
    body: str
    text_source: TextSource
    published: datetime | None
    fetched_at: datetime
    author: str | None = None
    language: str | None = None
    sitename: str | None = None
    tags: tuple[str, ...] = ()
    page_error: str | None = None
    id: int | None = None
    canonical_url: str | None = None
    story_id: int | None = None  # the id of the story's first article
    signature: bytes | None = None  # MinHash of the text, for near-duplicates
    page_pending: bool = False  # stored with the feed's text; its page is still to come

    def field_text(self, name: str) -> str:
        return {"title": self.title, "summary": self.summary, "body": self.body}.get(name, "")


@dataclass(frozen=True)
class Hit:
    """One occurrence of a phrase in one field, with offsets into that field's text."""

    field: str
    phrase: str
    start: int
    end: int
    matched: str


@dataclass(frozen=True)
class Rule:
    """A rule of rules.yaml: what to look for, where, and which channels to tell."""

    name: str
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    fields: tuple[str, ...] = FIELDS
    feeds: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    line: int | None = None
    # alert fatigue (see watcher.core.digest): hold repeats for `cooldown_s` after an
    # alert, or send only digests ("hourly", "daily", "HH:MM")
    cooldown_s: float | None = None
    digest: str | None = None
    # the rule language (see watcher.rules): a Lucene query, ANDed with any/all/none
    query: str = ""
    default_operator: str = "OR"
    tags: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    min_hits: int = 1
    stem: bool = True
    accents: str = "fold"  # or "exact"


@dataclass(frozen=True)
class Match:
    """A rule that matched an article: the hits, the field and the snippet shown."""

    rule: str
    hits: tuple[Hit, ...]
    field: str
    snippet: str
    query: str = ""


@dataclass(frozen=True)
class Alert:
    """Everything a channel needs to tell a person why an alert fired.

    Frozen at match time so that later edits to rules.yaml do not change what a
    pending delivery says.
    """

    delivery_id: str
    rule: str
    query: str
    title: str
    url: str | None
    feed: str
    published: str | None
    field: str
    snippet: str
    matched: tuple[str, ...] = ()
    article_id: int | None = None
    text_source: str = "page"
    # other copies of the story: (feed, title, url), filled in when it is sent
    sources: tuple[tuple[str, str, str | None], ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.delivery_id,
            "rule": self.rule,
            "query": self.query,
            "title": self.title,
            "url": self.url,
            "feed": self.feed,
            "published": self.published,
            "field": self.field,
            "snippet": self.snippet,
            "matched": list(self.matched),
            "article_id": self.article_id,
            "text_source": self.text_source,
            "sources": [{"feed": f, "title": t, "url": u} for f, t, u in self.sources],
        }


@dataclass(frozen=True)
class Delivery:
    """One alert for one channel: the outbox's row, with its attempts and status."""

    id: str
    channel: str
    rule: str
    alert: Alert
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None = None
    # set when the delivery waits for (or went out in) a digest: the digest's id
    digest_id: str | None = None
    story_id: int | None = None  # whose other copies the message lists


@dataclass(frozen=True)
class Digest:
    """Several held alerts of one rule for one channel, sent as one message.

    `id` is stable for the group (webhook-id, Message-ID), like a delivery id.
    """

    id: str
    rule: str
    alerts: tuple[Alert, ...]
