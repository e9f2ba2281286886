"""One feed end to end: fetch -> parse -> new entries -> pages -> extract -> store -> match."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from watcher.core.errors import ExtractError, FetchError, ParseError, StoreError
from watcher.core.identity import (
    StoryIndex,
    canonical_url,
    from_bytes,
    signature,
    to_bytes,
    trusted_canonical,
)
from watcher.core.models import Article, Entry, Extracted, Feed, FeedState, FetchResult, ParsedFeed
from watcher.core.parse import discover_feeds, looks_like_html, parse_feed
from watcher.core.schedule import (
    PollPolicy,
    next_poll_after_failure,
    next_poll_after_success,
    parse_retry_after,
    server_min_wait_s,
)
from watcher.extract.page import choose_text
from watcher.fetch.client import Fetcher
from watcher.rules import CompiledRules
from watcher.service import metrics
from watcher.service.workers import ExtractPool
from watcher.store.sqlite import Store

log = logging.getLogger("watcher.service.ingest")


@dataclass
class FeedOutcome:
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
    stories: StoryIndex | None = None  # near-duplicate detection; None: off
    # Called once when a feed is flagged unhealthy: (feed name, message).
    on_unhealthy: Callable[[str, str], None] | None = None


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
    store = ctx.store
    state = store.feed_state(feed.name)
    url = state.url if state else feed.url
    policy = poll_policy(feed, ctx.max_server_wait_s)
    started = time.perf_counter()
    try:
        result, parsed, discovered = await _fetch_and_parse(feed, url, state, ctx)
    except (FetchError, ParseError) as exc:
        metrics.FETCH_SECONDS.observe(time.perf_counter() - started)
        gone = isinstance(exc, FetchError) and exc.status == 410
        metrics.FETCHES.labels("gone" if gone else "error").inc()
        if gone:
            message = (f"fetch: feed {feed.name!r} is gone (410 from {url}); polling stopped. "
                       "Remove it from the config, or change its url to start again.")
            store.record_gone(feed.name, ctx.clock(), message)
            log.error("%s", message)
            return FeedOutcome(feed.name, ok=False, error=message)
        return _failed(feed, ctx, state.consecutive_failures if state else 0, exc)

    metrics.FETCH_SECONDS.observe(time.perf_counter() - started)
    metrics.FETCHES.labels("not_modified" if parsed is None else "ok").inc()
    now = ctx.clock()
    wait = server_min_wait_s(result.headers, now, parsed.ttl_minutes if parsed else None,
                             parsed.sy_period_s if parsed else None, policy.max_server_wait_s)
    if parsed is None:  # 304 Not Modified: nothing to parse
        store.record_fetch_success(
            feed.name, now, next_poll_after_success(now, policy, server_wait_s=wait),
            etag=result.etag or (state.etag if state else None),
            last_modified=result.last_modified or (state.last_modified if state else None))
        return FeedOutcome(feed.name, ok=True, not_modified=True)

    outcome = FeedOutcome(feed.name, ok=True)
    known = store.known_entries(feed.name, (e.entry_id for e in parsed.entries))
    seen: set[str] = set()
    fresh: list[Entry] = []
    for e in parsed.entries:
        if e.entry_id not in known and e.entry_id not in seen:
            seen.add(e.entry_id)
            fresh.append(e)
    # Oldest first, so alerts arrive in the order the stories were published.
    fresh.reverse()
    # A link whose canonical form is already stored is another source of that
    # article (an aggregator, a re-published guid): no page fetch, no new alert.
    pending: list[Entry] = []
    for e in fresh:
        if not _attach_if_known(feed, e, canonical_url(e.link), ctx, outcome):
            pending.append(e)
    if ctx.fetch_pages:
        ctx.extractor.expect(sum(1 for e in pending if e.link))
    articles = await asyncio.gather(*(_build_article(feed, e, ctx, outcome) for e in pending))
    # The feed's new articles, their matches and deliveries: one commit (and one
    # full-text index segment) rather than two per article.
    with store.transaction():
        for entry, article in zip(pending, articles, strict=True):
            _store_and_match(feed, entry, article, ctx, outcome)
            # The loop cannot run until the commit (tens of ms for a big feed):
            # the extraction workers get their next pages from here meanwhile.
            ctx.extractor.pump()

    now = ctx.clock()
    moved = discovered or result.permanent_redirect
    store.record_fetch_success(
        feed.name, now,
        next_poll_after_success(now, policy, [e.published for e in parsed.entries], wait),
        etag=result.etag, last_modified=result.last_modified,
        url=moved, title=parsed.title or None)
    if result.permanent_redirect:
        log.warning("fetch: feed %r moved permanently to %s; using the new address",
                    feed.name, result.permanent_redirect)
    log.info("ingest: feed %r: %d entries, %d new, %d matches", feed.name,
             len(parsed.entries), outcome.new_articles, outcome.matches)
    return outcome


def _store_and_match(feed: Feed, entry: Entry, article: Article, ctx: IngestContext,
                     outcome: FeedOutcome) -> None:
    if _attach_if_known(feed, entry, article.canonical_url, ctx, outcome):
        return
    article = _place_in_story(article, ctx)
    try:
        article_id = ctx.store.add_article(article)
    except StoreError as exc:
        log.error("%s", exc)
        return
    if article_id is None:
        return
    if ctx.stories is not None and article.signature is not None:
        ctx.stories.add(article_id, from_bytes(article.signature))
    outcome.new_articles += 1
    metrics.ARTICLES.inc()
    m, d = match_and_enqueue(replace(article, id=article_id), ctx)
    outcome.matches += m
    outcome.deliveries += d


def _attach_if_known(feed: Feed, entry: Entry, canonical: str | None, ctx: IngestContext,
                     outcome: FeedOutcome) -> bool:
    if not canonical:
        return False
    known = ctx.store.article_by_canonical(canonical)
    if known is None:
        return False
    if ctx.store.add_source(known[0], feed.name, entry.entry_id, entry.link, entry.title,
                            ctx.clock()):
        outcome.sources += 1
        log.info("ingest: feed %r: %r is another copy of article #%d (%s)", feed.name,
                 entry.title, known[0], canonical)
    return True


def _place_in_story(article: Article, ctx: IngestContext) -> Article:
    """Give the article its text signature and, if it is a near-copy, its story."""
    if ctx.stories is None:
        return article
    sig = from_bytes(article.signature) if article.signature else signature(article.body)
    if sig is None:
        return article
    hit = ctx.stories.find(sig, article.fetched_at)
    if hit is not None:
        log.info("ingest: %r is a copy of story #%d (similarity %.2f)", article.title,
                 hit.story_id, hit.similarity)
    return replace(article, signature=to_bytes(sig),
                   story_id=hit.story_id if hit is not None else None)


def match_and_enqueue(article: Article, ctx: IngestContext) -> tuple[int, int]:
    """Match a stored article and write its matches and deliveries in one transaction."""
    matches = ctx.rules().match(article)
    created = ctx.store.record_matches(article, matches, ctx.channels_by_rule(), ctx.clock())
    for m in matches:
        metrics.MATCHES.labels(m.rule).inc()
        log.info("match: rule %r fired on %r (feed %r, %s): %s", m.rule, article.title,
                 article.feed, m.field, m.snippet)
    return len(matches), created


async def _build_article(feed: Feed, entry: Entry, ctx: IngestContext,
                         outcome: FeedOutcome) -> Article:
    extracted: Extracted | None = None
    page_error: str | None = None
    page_url: str | None = None
    if entry.link and ctx.fetch_pages:
        try:
            # Kept compressed: the extraction worker inflates it, off this process.
            page = await ctx.fetcher.fetch_page(feed, entry.link, decode=False)
            page_url = page.url
            started = time.perf_counter()
            extracted = await ctx.extractor.extract(page.body, page.url,
                                                    page.headers.get("content-type"),
                                                    page.undecoded)
            metrics.EXTRACT_SECONDS.observe(time.perf_counter() - started)
        except (FetchError, ExtractError) as exc:
            page_error = str(exc)
            outcome.page_errors.append(page_error)
            log.warning("%s; using the feed's own text", page_error)
    chosen = choose_text(extracted, entry)
    page_canonical = trusted_canonical(page_url, extracted.canonical if extracted else None)
    return Article(
        canonical_url=page_canonical or canonical_url(entry.link),
        feed=feed.name, entry_id=entry.entry_id, url=entry.link,
        title=entry.title or (extracted.title if extracted and extracted.title else ""),
        summary=entry.summary, body=chosen.body, text_source=chosen.source,
        published=entry.published, fetched_at=ctx.clock(),
        author=entry.author or (extracted.author if extracted else None),
        language=extracted.language if extracted else None,
        sitename=extracted.sitename if extracted else None,
        tags=feed.tags, page_error=page_error,
        # made by the extraction worker when the page's text is the one kept
        signature=extracted.signature if extracted and chosen.source == "page" else None)


def _failed(feed: Feed, ctx: IngestContext, failures_before: int,
            exc: FetchError | ParseError) -> FeedOutcome:
    now = ctx.clock()
    failures = failures_before + 1
    retry_after = None
    if isinstance(exc, FetchError) and exc.status in (429, 503):
        retry_after = parse_retry_after(exc.retry_after, now)
    when = next_poll_after_failure(now, feed.interval_s, failures, ctx.max_backoff_s,
                                   retry_after)
    message = str(exc)
    if not message.startswith(("fetch: feed", "parse: feed")):
        stage, _, rest = message.partition(": ")
        message = f"{stage}: feed {feed.name!r}: {rest}"
    ctx.store.record_fetch_failure(feed.name, now, when, message,
                                   hold=retry_after is not None)
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
    for article in ctx.store.unmatched_articles():
        match_and_enqueue(article, ctx)
        done += 1
    if done:
        log.info("match: finished %d article(s) stored before an interruption", done)
    return done
