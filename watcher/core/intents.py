"""What the pure decisions ask the store to do: plain values, applied by watcher.service.

The store takes these and nothing cleverer: it writes what they say, in the words
of the domain, and decides nothing (the decisions are in watcher.core.decide,
watcher.core.alerts and watcher.core.digest).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from watcher.core.models import Alert, Article, Match, StoryRef

# -- a feed was polled ---------------------------------------------------------------


@dataclass(frozen=True)
class FeedFetched:
    """The feed answered (a 304 included): validators and the next poll time."""

    name: str
    at: datetime
    next_poll_at: datetime
    etag: str | None
    last_modified: str | None
    url: str | None = None  # the feed moved (301/308, or discovery found the real feed)
    title: str | None = None
    # what a sitemap or page source remembers until its next poll (None: unchanged)
    memo: str | None = None


@dataclass(frozen=True)
class FeedFailed:
    """The fetch or the parse failed; `hold` when the server said when to come back."""

    name: str
    at: datetime
    next_poll_at: datetime
    error: str
    hold: bool = False


@dataclass(frozen=True)
class FeedGone:
    """410 Gone: no more polls until the config changes the feed's URL."""

    name: str
    at: datetime
    error: str


PollResult = FeedFetched | FeedFailed | FeedGone

# -- articles and their copies ---------------------------------------------------------


@dataclass(frozen=True)
class NewArticle:
    """Store `article`; it joins `story`, or starts a story of its own (None).

    `story_keys` are the LSH band keys of its signature (empty when it has none),
    stored so that later copies find it.
    """

    article: Article
    story: StoryRef | None = None
    story_keys: tuple[int, ...] = ()


@dataclass(frozen=True)
class PageArrived:
    """The page of an article stored from its feed's text has come: the text it keeps
    now (`body` None: the feed's text stays), what the page said of itself, and the
    story it joins when its own story holds nothing else (`story`)."""

    article_id: int
    body: str | None = None
    text_source: str | None = None
    signature: bytes | None = None
    story_keys: tuple[int, ...] = ()
    story: StoryRef | None = None
    author: str | None = None
    language: str | None = None
    sitename: str | None = None
    page_error: str | None = None


@dataclass(frozen=True)
class NewSource:
    """A feed entry that is another copy of a stored article: a source, not an article."""

    article_id: int
    feed: str
    entry_id: str
    url: str | None
    title: str
    seen_at: datetime


@dataclass(frozen=True)
class NewDelivery:
    """One alert for one channel, with its stable id (see watcher.core.alerts)."""

    id: str
    rule: str
    channel: str
    alert: Alert


@dataclass(frozen=True)
class Matched:
    """An article's matches and the deliveries they make, written in one transaction.

    The deliveries of a match the article already had are not made again; the
    article counts as matched afterwards, even with no match at all.
    """

    article_id: int
    story_id: int
    matches: tuple[Match, ...]
    deliveries: tuple[NewDelivery, ...]
    at: datetime


# -- the outbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class HoldCandidate:
    """A new delivery not yet classified as immediate or held for a digest."""

    id: str
    rule: str
    channel: str
    created_at: datetime


@dataclass(frozen=True)
class HoldDecision:
    """Send `id` now (release_at None) or hold it until `release_at` in `digest_id`;
    `drop`: its rule is muted with "drop", so it is marked dropped, never sent.

    `basis` is the last immediate alert of (rule, channel) the decision assumed;
    the store applies it only while that is still true, so two processes that
    classify at once cannot both open a cooldown window.
    """

    id: str
    rule: str
    channel: str
    release_at: datetime | None
    digest_id: str | None
    basis: datetime | None
    drop: bool = False


@dataclass(frozen=True)
class Retention:
    """How long articles are kept: unmatched ones, and those that fired an alert."""

    keep_days: float
    keep_matched_days: float
