"""What the store's reads return: typed rows for people and programs (the CLI, the
web console), never dicts. Times are aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from watcher.core.models import Article, StoryRef


@dataclass(frozen=True)
class StoryCandidate:
    """A recent article sharing an LSH band key with a new one, and its story."""

    article_id: int
    story: StoryRef
    signature: bytes
    site: str = ""  # watcher.core.identity.site_of
    body: str = ""
    title: str = ""


@dataclass(frozen=True)
class SourceRecord:
    """One feed entry that carried a story (its first copy included)."""

    feed: str
    entry_id: str
    url: str | None
    title: str | None
    seen_at: datetime
    article_id: int


@dataclass(frozen=True)
class FeedHealth:
    """A feed's state for `watcher feeds`: when it last worked, what failed, what's next."""

    name: str
    url: str
    title: str | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    next_poll_at: datetime | None
    consecutive_failures: int
    failing_since: datetime | None
    unhealthy_since: datetime | None
    gone_at: datetime | None
    conditional: bool  # the server gave validators (ETag, Last-Modified)
    items_7d: int
    paused_at: datetime | None = None  # paused from the console: not polled


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery in the outbox, as `watcher deliveries` lists it."""

    id: str
    rule: str
    channel: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    article_id: int
    held_until: datetime | None
    digest_id: str | None
    last_attempt_at: datetime | None
    title: str | None


@dataclass(frozen=True)
class SearchHit:
    """A stored article found by full-text search, with its snippet's match in [ ]."""

    id: int
    feed: str
    title: str
    url: str | None
    published_at: datetime | None
    fetched_at: datetime
    snippet: str


@dataclass(frozen=True)
class MatchRecord:
    """A stored match as the explain and alert views read it back."""

    rule: str
    query: str
    field: str
    snippet: str
    created_at: datetime


@dataclass(frozen=True)
class ArticleRecord:
    """An article with what it matched, where its alerts went and every copy of its story."""

    article: Article
    matched_at: datetime | None
    matches: tuple[MatchRecord, ...]
    deliveries: tuple[DeliveryRecord, ...]
    sources: tuple[SourceRecord, ...]


@dataclass(frozen=True)
class FeedCounts:
    """How many feeds there are, by health."""

    total: int
    healthy: int
    failing: int
    unhealthy: int
    gone: int


@dataclass(frozen=True)
class ProblemRecord:
    """A recent error: a feed's or a delivery's, with when it happened."""

    what: str  # the feed's name or the delivery's id
    error: str
    at: datetime | None


@dataclass(frozen=True)
class StatusReport:
    """The numbers behind `watcher status` and the metrics' gauges."""

    feeds: FeedCounts
    articles_today: int
    articles_total: int
    matches_today: int
    deliveries: dict[str, int]  # status -> count
    backlog: int  # pending or retrying
    backlog_oldest: datetime | None
    feed_errors: tuple[ProblemRecord, ...]
    delivery_errors: tuple[ProblemRecord, ...]


@dataclass(frozen=True)
class DaemonInfo:
    """A running daemon, as it registers itself: where, since when, with which rules."""

    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    rules_hash: str
    config_hash: str


@dataclass(frozen=True)
class WebSession:
    """A web console login, kept in the store so that it outlives a restart and any
    `watcher web` process sharing the database knows it. Only a digest of the cookie's
    token is stored: reading the database does not let anyone log in."""

    token_hash: str
    name: str
    # A digest of what the login proved (the password's hash, or the token): when the
    # password changes, the sessions opened with the old one no longer match.
    credential: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AlertRecord:
    """A rule's match on an article, as the web console lists it: why it fired, and
    whether someone marked it not relevant."""

    id: int
    rule: str
    query: str
    field: str
    snippet: str
    created_at: datetime
    article_id: int
    story_id: int | None
    title: str
    url: str | None
    feed: str
    published_at: datetime | None
    not_relevant: bool
    matched: tuple[str, ...] = ()  # the words that matched, as the article wrote them
