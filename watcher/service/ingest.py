"""One feed end to end: fetch -> parse -> new entries -> pages -> extract -> store -> match.

The decisions (which entries are new, which are copies, which story an article
joins, which deliveries a match makes) are pure functions in watcher.core; this
module fetches what they need, asks them, and applies their intents to the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

from watcher.core.alerts import new_deliveries
from watcher.core.decide import (
    AddSource,
    StoreStep,
    StoryHit,
    StoryPolicy,
    fresh_entries,
    place_in_story,
    plan_articles,
    plan_entries,
)
from watcher.core.display import one_line
from watcher.core.errors import FetchError, ParseError, StoreError
from watcher.core.intents import FeedFailed, FeedFetched, FeedGone, Matched, NewArticle, NewSource
from watcher.core.models import (
    Article,
    Entry,
    Feed,
    FeedState,
    FetchResult,
    ParsedFeed,
    StoryRef,
)
from watcher.core.parse import discover_feeds, looks_like_html, parse_feed
from watcher.core.schedule import (
    PollPolicy,
    next_poll_after_failure,
    next_poll_after_success,
    server_min_wait_s,
)
from watcher.core.sitemap import SitemapLimits
from watcher.core.websub import hub_links, link_header
from watcher.extract.choose import keep_text
from watcher.fetch.client import Fetcher
from watcher.rules import CompiledRules
from watcher.service import metrics
from watcher.service.pages import Page, PageBatch, PageJobs, resume_pages
from watcher.service.workers import ExtractPool
from watcher.store import Store

if TYPE_CHECKING:
    from watcher.service.websub import WebSub

log = logging.getLogger("watcher.service.ingest")


@dataclass
class FeedOutcome:
    """What one poll of one feed came to."""

    feed: str
    ok: bool
    not_modified: bool = False
    new_articles: int = 0
    matches: int = 0
    deliveries: int = 0
    error: str | None = None
    page_errors: list[str] = field(default_factory=list)
    sources: int = 0  # entries that were another copy of a stored article


@dataclass(frozen=True)
class IngestContext:
    """What ingesting a feed needs from the daemon."""

    fetcher: Fetcher
    store: Store
    rules: Callable[[], CompiledRules]  # read at use: rules may be swapped while we run
    channels_by_rule: Callable[[], Mapping[str, Sequence[str]]]
    clock: Callable[[], datetime]
    max_backoff_s: float = 24 * 3600.0
    max_server_wait_s: float = 6 * 3600.0
    fetch_pages: bool = True
    extractor: ExtractPool = field(default_factory=lambda: ExtractPool(in_process=True))
    unhealthy_after_s: float = 24 * 3600.0
    stories: StoryPolicy | None = None  # near-duplicate detection; None: off
    # Called once when a feed is flagged unhealthy: (feed name, message).
    on_unhealthy: Callable[[str, str], None] | None = None
    # How long new entries wait for their pages before they are stored with the
    # feed's text (None: for every page, each within its own deadlines).
    page_wait_s: float | None = None
    max_pages: int = 50  # per feed and poll
    hurry: asyncio.Event | None = None  # set when the daemon stops: no more waiting
    on_alerts: Callable[[], None] | None = None  # a late page made new deliveries
    jobs: PageJobs = field(default_factory=PageJobs)
    sitemaps: SitemapLimits = field(default_factory=SitemapLimits)
    websub: WebSub | None = None  # pushes from the hubs feeds name (web.public_url set)


def poll_policy(feed: Feed, max_server_wait_s: float) -> PollPolicy:
    return PollPolicy(interval_s=feed.interval_s, min_interval_s=feed.min_interval_s,
                      max_interval_s=feed.max_interval_s, adaptive=feed.adaptive,
                      max_server_wait_s=max_server_wait_s)


async def _fetch_and_parse(feed: Feed, url: str, state: FeedState | None,
                           ctx: IngestContext) -> tuple[FetchResult, ParsedFeed | None, str | None]:
    """Fetch (conditionally) and parse. The third value is a feed URL found by discovery."""
    result = await ctx.fetcher.fetch_feed(
        feed, url=url, etag=state.etag if state else None,
        last_modified=state.last_modified if state else None)
    if result.not_modified:
        return result, None, None
    try:
        parsed = await asyncio.to_thread(parse_feed, result.body, result.headers, result.url)
        return result, parsed, None
    except ParseError:
        if not looks_like_html(result.body, result.headers):
            raise
        advertised = discover_feeds(result.body, result.url)
        if not advertised:
            raise ParseError(f"feed {feed.name!r}: {result.url} is an HTML page that "
                             "advertises no feed") from None
    # The URL is a web page: follow the first feed it advertises, once.
    found = advertised[0]
    log.warning("fetch: feed %r: %s is a web page; using the feed it advertises: %s",
                feed.name, result.url, found)
    result = await ctx.fetcher.fetch_feed(feed, url=found)
    parsed = await asyncio.to_thread(parse_feed, result.body, result.headers, result.url)
    return result, parsed, found


async def ingest_feed(feed: Feed, ctx: IngestContext) -> FeedOutcome:
    state = ctx.store.feed_state(feed.name)
    url = state.url if state else feed.url
    policy = poll_policy(feed, ctx.max_server_wait_s)
    started = time.perf_counter()
    try:
        result, parsed, discovered = await _fetch_and_parse(feed, url, state, ctx)
    except (FetchError, ParseError) as exc:
        metrics.FETCH_SECONDS.observe(time.perf_counter() - started)
        return fetch_failed(feed, url, state, exc, ctx)
    metrics.FETCH_SECONDS.observe(time.perf_counter() - started)
    metrics.FETCHES.labels("not_modified" if parsed is None else "ok").inc()
    now = ctx.clock()
    wait = server_min_wait_s(result.headers, now, parsed.ttl_minutes if parsed else None,
                             parsed.sy_period_s if parsed else None, policy.max_server_wait_s)
    if parsed is None:  # 304 Not Modified: nothing to parse
        ctx.store.record_poll(FeedFetched(
            feed.name, now, _next(feed, now, next_poll_after_success(
                now, policy, server_wait_s=wait), ctx),
            etag=result.etag or (state.etag if state else None),
            last_modified=result.last_modified or (state.last_modified if state else None)))
        resume_pages(feed, ctx, ctx.max_pages)
        return FeedOutcome(feed.name, ok=True, not_modified=True)

    if ctx.websub is not None:
        # The Link header first, then the feed's own links (WebSub discovery, 4).
        hub, topic = hub_links(link_header(result.headers.get("link")), result.url)
        if hub or parsed.hub:
            ctx.websub.noticed(feed, hub or parsed.hub or "",
                               topic or parsed.topic or result.url)
    outcome = await ingest_entries(feed, parsed, ctx)
    now = ctx.clock()
    if ctx.websub is not None:
        ctx.websub.polled(feed.name, outcome.new_articles, now)
    ctx.store.record_poll(FeedFetched(
        feed.name, now, _next(feed, now, next_poll_after_success(
            now, policy, [e.published for e in parsed.entries], wait), ctx),
        etag=result.etag, last_modified=result.last_modified,
        url=discovered or result.permanent_redirect, title=parsed.title or None))
    if result.permanent_redirect:
        log.warning("fetch: feed %r moved permanently to %s; using the new address",
                    feed.name, result.permanent_redirect)
    log.info("ingest: feed %r: %d entries, %d new, %d matches", feed.name,
             len(parsed.entries), outcome.new_articles, outcome.matches)
    return outcome


def _next(feed: Feed, now: datetime, planned: datetime, ctx: IngestContext) -> datetime:
    return planned if ctx.websub is None else ctx.websub.poll_after(feed.name, now, planned)


async def ingest_entries(feed: Feed, parsed: ParsedFeed, ctx: IngestContext) -> FeedOutcome:
    """The feed's new entries: copies recorded, the rest stored (with their page's
    text when it came in time) and matched."""
    store, outcome = ctx.store, FeedOutcome(feed.name, ok=True)
    fresh = fresh_entries(parsed.entries,
                          store.known_entries(feed.name, (e.entry_id for e in parsed.entries)))
    # identity (and numpy) here: a poll with nothing new, or a 304, never needs them
    from watcher.core.identity import canonical_url

    canonical = {e.entry_id: canonical_url(e.link) for e in fresh}
    plan = plan_entries(feed.name, fresh, canonical,
                        store.articles_at(c for c in canonical.values() if c), ctx.clock())
    for source in plan.sources:
        _add_source(source, ctx, outcome)
    pages = PageBatch(feed, plan.build, ctx)
    resume_pages(feed, ctx, ctx.max_pages - len(pages.tasks))
    await pages.wait(ctx.page_wait_s, ctx.hurry)
    articles = [_build_article(feed, e, pages.page(e), pages.to_come(e), ctx, outcome)
                for e in plan.build]
    ids = await _store_articles(articles, ctx, outcome)
    pages.hand_over(feed, ids, ctx)
    return outcome


# A slice of a feed's store-and-match work holds the event loop (and the database)
# for about this long; then it commits and lets deliveries, other feeds and the
# extraction workers' sockets run. Each commit writes every page the slice touched
# (the story keys' and full-text index's pages are spread over the whole file), so
# shorter slices cost more CPU for the same articles; the workers are fed inside a
# slice (pump), and a poll's alerts wait at most this long.
_SLICE_S = 0.05


# A slice rolled back by a transient store error (two daemons deadlocked, the
# connection dropped) is tried again this many times before the feed's poll fails.
_SLICE_TRIES = 3


async def _store_articles(articles: list[Article], ctx: IngestContext,
                          outcome: FeedOutcome) -> dict[str, int]:
    """Store, place and match the built articles, a slice at a time; entry id -> id
    of each article stored."""
    ids: dict[str, int] = {}
    own: dict[str, int] = {}  # canonical URL -> article stored in this batch
    remaining = articles
    while remaining:
        for attempt in range(1, _SLICE_TRIES + 1):
            part = FeedOutcome(outcome.feed, ok=True)  # counted once the slice commits
            got: dict[str, int] = {}
            try:
                done = _store_slice(remaining, own, got, ctx, part)
                break
            except StoreError as exc:
                if not exc.transient or attempt == _SLICE_TRIES:
                    raise
                log.warning("%s; storing feed %r's slice again (try %d)", exc, outcome.feed,
                            attempt + 1)
                await asyncio.sleep(0.05 * attempt)
        ids.update(got)
        own.update({a.canonical_url: got[a.entry_id] for a in remaining[:done]
                    if a.canonical_url and a.entry_id in got and a.canonical_url not in own})
        for name in ("new_articles", "matches", "deliveries", "sources"):
            setattr(outcome, name, getattr(outcome, name) + getattr(part, name))
        remaining = remaining[done:]
        if part.deliveries and ctx.on_alerts is not None:
            ctx.on_alerts()  # the slice's alerts go out while the next one is matched
        if remaining:
            await asyncio.sleep(0)
    return ids


_LOOKAHEAD = 64


def _keys_of(article: Article, ctx: IngestContext) -> tuple[int, ...]:
    if ctx.stories is None or article.signature is None:
        return ()
    return _band_keys(article.signature)


# Keyed by the signature: an article's keys are wanted in the lookahead of each slice
# it waits in, then when it is placed.
@lru_cache(maxsize=256)
def _band_keys(signature: bytes) -> tuple[int, ...]:
    from watcher.core.identity import band_keys, from_bytes

    return tuple(band_keys(from_bytes(signature)))


def _store_slice(remaining: list[Article], own: dict[str, int], ids: dict[str, int],
                 ctx: IngestContext, part: FeedOutcome) -> int:
    """One transaction of about _SLICE_S; how many of `remaining` it took."""
    done = 0
    with ctx.store.transaction():
        # The band keys of the articles ahead locked at once, in order: two daemons
        # placing overlapping batches do not wait on each other in a circle (past the
        # lookahead, a deadlock is undone by the database and the slice tried again).
        ctx.store.lock_story_keys(sorted({k for a in remaining[:_LOOKAHEAD]
                                          for k in _keys_of(a, ctx)}))
        stored = {**ctx.store.articles_at(a.canonical_url for a in remaining
                                          if a.canonical_url), **own}
        started = time.perf_counter()
        for step in plan_articles(remaining, stored):
            _apply(step, ids, ctx, part)
            done += 1
            ctx.extractor.pump()
            if time.perf_counter() - started > _SLICE_S:
                break
    return done


def _add_source(source: NewSource, ctx: IngestContext, outcome: FeedOutcome) -> None:
    if ctx.store.add_source(source):
        outcome.sources += 1
        log.info("ingest: feed %r: %r is another copy of article #%d", source.feed,
                 source.title, source.article_id)


def _apply(step: StoreStep, ids: dict[str, int], ctx: IngestContext,
           outcome: FeedOutcome) -> None:
    """Store one built article, or record it as a copy; a new article is matched."""
    a = step.article
    if isinstance(step, AddSource):
        target = step.article_id if step.article_id is not None \
            else ids.get(step.of_entry or "")
        if target is not None:
            _add_source(NewSource(target, a.feed, a.entry_id, a.url, a.title, ctx.clock()),
                        ctx, outcome)
        return
    hit, keys = _place_in_story(a, ctx)
    # A StoreError (a full disk) ends the feed's transaction: nothing of it is kept,
    # and its entries are new again at the next poll.
    article_id = ctx.store.add_article(NewArticle(a, hit.story if hit else None, keys))
    if article_id is None:
        # Known after all: another daemon stored this page (its canonical URL) a moment
        # ago, and its entry is a source of that article.
        other = ctx.store.articles_at([a.canonical_url]).get(a.canonical_url or "") \
            if a.canonical_url else None
        if other is not None:
            _add_source(NewSource(other, a.feed, a.entry_id, a.url, a.title, ctx.clock()),
                        ctx, outcome)
        return
    ids[a.entry_id] = article_id
    outcome.new_articles += 1
    metrics.ARTICLES.inc()
    story = hit.story if hit else StoryRef(article_id, a.feed, a.entry_id)
    m, d = match_and_enqueue(replace(a, id=article_id, story_id=story.id), story, ctx)
    outcome.matches += m
    outcome.deliveries += d


def _place_in_story(article: Article, ctx: IngestContext) -> tuple[StoryHit | None,
                                                                  tuple[int, ...]]:
    """The story a near-copy joins (None: its own), and its band keys (once)."""
    if ctx.stories is None or article.signature is None:
        return None, ()
    from watcher.core.identity import from_bytes, site_of

    sig = from_bytes(article.signature)
    keys = _band_keys(article.signature)
    # Several daemons may place copies of one story at once: the decision reads the
    # candidates, then writes; no one else places an article sharing a key meanwhile.
    ctx.store.lock_story_keys(keys)
    candidates = ctx.store.story_candidates(keys, article.fetched_at - ctx.stories.window)
    hit = place_in_story(sig, candidates, ctx.stories.threshold,
                         site_of(article.canonical_url or article.url, article.feed),
                         article.body, article.title)
    if hit is not None:
        log.info("ingest: %r is a copy of story #%d (similarity %.2f)", one_line(article.title),
                 hit.story.id, hit.similarity)
    return hit, keys


def match_and_enqueue(article: Article, story: StoryRef, ctx: IngestContext
                      ) -> tuple[int, int]:
    """Match a stored article and write its matches and deliveries in one transaction."""
    assert article.id is not None
    matches = ctx.rules().match(article)
    deliveries = new_deliveries(article, story, matches, ctx.channels_by_rule())
    created = ctx.store.record_matches(
        Matched(article.id, story.id, tuple(matches), deliveries, ctx.clock()))
    for m in matches:
        metrics.MATCHES.labels(m.rule).inc()
        log.info("match: rule %r fired on %r (feed %r, %s): %s", m.rule,
                 one_line(article.title), article.feed, m.field, one_line(m.snippet, 400))
    return len(matches), created


def _build_article(feed: Feed, entry: Entry, page: Page | None, to_come: bool,
                   ctx: IngestContext, outcome: FeedOutcome) -> Article:
    extracted = page.extracted if page is not None else None
    if page is not None and page.error:
        outcome.page_errors.append(page.error)
    kept = extracted.kept if extracted is not None and extracted.kept is not None \
        else keep_text(extracted, entry, sign=ctx.stories is not None)
    from watcher.core.identity import canonical_url, trusted_canonical

    page_canonical = trusted_canonical(page.url if page else None,
                                       extracted.canonical if extracted else None)
    return Article(
        canonical_url=page_canonical or canonical_url(entry.link),
        feed=feed.name, entry_id=entry.entry_id, url=entry.link,
        title=entry.title or (extracted.title if extracted and extracted.title else ""),
        summary=entry.summary, body=kept.body, text_source=kept.source,
        published=entry.published, fetched_at=ctx.clock(),
        author=entry.author or (extracted.author if extracted else None),
        language=extracted.language if extracted and extracted.language else entry.language,
        sitename=extracted.sitename if extracted else None,
        tags=feed.tags, page_error=page.error if page else None, signature=kept.signature,
        page_pending=to_come)


def fetch_failed(feed: Feed, url: str, state: FeedState | None,
                  exc: FetchError | ParseError, ctx: IngestContext) -> FeedOutcome:
    now = ctx.clock()
    if isinstance(exc, FetchError) and exc.status == 410:
        metrics.FETCHES.labels("gone").inc()
        message = (f"fetch: feed {feed.name!r} is gone (410 from {url}); polling stopped. "
                   "Remove it from the config, or change its url to start again.")
        ctx.store.record_poll(FeedGone(feed.name, now, message))
        log.error("%s", message)
        return FeedOutcome(feed.name, ok=False, error=message)
    metrics.FETCHES.labels("error").inc()
    failures = (state.consecutive_failures if state else 0) + 1
    retry_after = None
    if isinstance(exc, FetchError) and exc.status in (429, 503):
        retry_after = exc.retry_after
    when = next_poll_after_failure(now, feed.interval_s, failures, ctx.max_backoff_s,
                                   retry_after)
    message = str(exc)
    if not message.startswith(("fetch: feed", "parse: feed")):
        stage, _, rest = message.partition(": ")
        message = f"{stage}: feed {feed.name!r}: {rest}"
    ctx.store.record_poll(FeedFailed(feed.name, now, when, message,
                                     hold=retry_after is not None))
    if ctx.store.flag_unhealthy(feed.name, now, ctx.unhealthy_after_s):
        notice = (f"fetch: feed {feed.name!r} has been failing for more than "
                  f"{ctx.unhealthy_after_s / 3600:g} h and is now flagged unhealthy; "
                  f"last error: {message}")
        log.error("%s", notice)
        if ctx.on_unhealthy is not None:
            ctx.on_unhealthy(feed.name, notice)
    log.error("%s; next try %s (failure %d)", message, when.strftime("%Y-%m-%d %H:%M:%S"),
              failures)
    return FeedOutcome(feed.name, ok=False, error=message)


async def rematch_unmatched(ctx: IngestContext) -> int:
    """Finish articles stored before a crash but never matched."""
    done = 0
    started = time.perf_counter()
    for article in ctx.store.unmatched_articles():
        assert article.id is not None
        story = ctx.store.story_of(article.id) or StoryRef(article.id, article.feed,
                                                           article.entry_id)
        match_and_enqueue(article, story, ctx)
        done += 1
        if time.perf_counter() - started > _SLICE_S:
            await asyncio.sleep(0)
            started = time.perf_counter()
    if done:
        log.info("match: finished %d article(s) stored before an interruption", done)
    return done
