"""For one feed: which entries are new articles, which are copies of stored ones,
and which story a new article joins. Pure: entries and what the store knows in,
intents out (see watcher.core.intents); watcher.service.ingest applies them.

Copies are looked for twice, for two different reasons:

- before any page is fetched, by the canonical form of the entry's link: a copy
  found then costs no page fetch at all (an aggregator's entry, a re-published
  guid);
- after the pages, when the articles are about to be stored: the page may name
  another canonical URL (its `<link rel="canonical">`), another feed may have
  stored the story while the pages were fetched, and two entries of this feed
  may be one page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from watcher.core.intents import NewSource
from watcher.core.models import Article, Entry, StoryRef
from watcher.core.records import StoryCandidate

if TYPE_CHECKING:
    import numpy as np


def fresh_entries(entries: Iterable[Entry], known: Iterable[str]) -> list[Entry]:
    """Entries not seen before (by entry id), each once, oldest first: a feed lists
    its newest first, and alerts should arrive in the order stories were published."""
    seen = set(known)
    fresh: list[Entry] = []
    for e in entries:
        if e.entry_id not in seen:
            seen.add(e.entry_id)
            fresh.append(e)
    fresh.reverse()
    return fresh


@dataclass(frozen=True)
class EntryPlan:
    """What to do with a feed's new entries before fetching any page."""

    build: tuple[Entry, ...]  # fetch the page (when there is one), then store
    sources: tuple[NewSource, ...]  # copies of stored articles: record, fetch nothing


def plan_entries(feed: str, fresh: Sequence[Entry], canonical: Mapping[str, str | None],
                 stored: Mapping[str, int], now: datetime) -> EntryPlan:
    """`canonical`: entry id -> canonical link; `stored`: canonical URL -> article id."""
    build: list[Entry] = []
    sources: list[NewSource] = []
    for e in fresh:
        key = canonical.get(e.entry_id)
        article_id = stored.get(key) if key else None
        if article_id is None:
            build.append(e)
        else:
            sources.append(NewSource(article_id, feed, e.entry_id, e.link, e.title, now))
    return EntryPlan(tuple(build), tuple(sources))


@dataclass(frozen=True)
class AddArticle:
    """An article no stored one shares a canonical URL with: store it as a new one."""

    article: Article


@dataclass(frozen=True)
class AddSource:
    """A copy: of a stored article (`article_id`), or of an article of this same
    batch that is stored just before it (`of_entry`)."""

    article: Article
    article_id: int | None = None
    of_entry: str | None = None


StoreStep = AddArticle | AddSource


def plan_articles(articles: Sequence[Article], stored: Mapping[str, int]) -> list[StoreStep]:
    """The built articles, in order, as articles to store or copies to record.

    `stored`: canonical URL -> article id, read just before (inside the transaction
    that applies these steps).
    """
    steps: list[StoreStep] = []
    first_of: dict[str, str] = {}  # canonical URL -> entry id of this batch's article
    for a in articles:
        key = a.canonical_url
        if key and key in stored:
            steps.append(AddSource(a, article_id=stored[key]))
        elif key and key in first_of:
            steps.append(AddSource(a, of_entry=first_of[key]))
        else:
            if key:
                first_of[key] = a.entry_id
            steps.append(AddArticle(a))
    return steps


@dataclass(frozen=True)
class StoryPolicy:
    """Copies of one story within `window` whose texts are at least `threshold`
    similar (estimated Jaccard similarity of word shingles) are one story."""

    threshold: float = 0.5
    window: timedelta = timedelta(days=3)


@dataclass(frozen=True)
class StoryHit:
    """The story a new article joins, through its most similar recent article."""

    story: StoryRef
    article_id: int
    similarity: float


def place_in_story(sig: np.ndarray, candidates: Iterable[StoryCandidate],
                   threshold: float, site: str | None = None, text: str = "",
                   title: str = "") -> StoryHit | None:
    """The most similar candidate at or above the threshold, if any: the new article
    joins its story; None: it starts its own.

    A candidate from the article's own `site` must also be a copy in substance (see
    watcher.core.identity.distinct_content): a site's articles share its
    boilerplate, which can make two different ones as similar as two copies.
    """
    # numpy with it: a cycle where no feed has new entries never gets here
    from watcher.core.identity import distinct_content, from_bytes, similarity

    scored = sorted(((similarity(sig, from_bytes(c.signature)), c) for c in candidates),
                    key=lambda pair: -pair[0])
    for sim, c in scored:
        if sim < threshold:
            break
        if site is not None and c.site == site \
                and distinct_content(text, c.body, titles=(title, c.title)):
            continue
        return StoryHit(c.story, c.article_id, sim)
    return None
