"""One feed end to end: fetch -> parse -> new entries -> pages -> extract -> store -> match."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from watcher.errors import ExtractError, FetchError, ParseError, StoreError
from watcher.extract import choose_text, extract_page
from watcher.http import Fetcher
from watcher.models import Article, Entry, Extracted, Feed
from watcher.parse import parse_feed
from watcher.rules import CompiledRules
from watcher.schedule import (
    next_poll_after_failure,
    next_poll_after_success,
    parse_retry_after,
)
from watcher.store import Store

log = logging.getLogger("watcher.ingest")


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


@dataclass(frozen=True)
class IngestContext:
    fetcher: Fetcher
    store: Store
    rules: Callable[[], CompiledRules]  # read at use: rules may be swapped while we run
    channels_by_rule: Callable[[], Mapping[str, Sequence[str]]]
    clock: Callable[[], datetime]
    max_backoff_s: float = 24 * 3600.0
    fetch_pages: bool = True


async def ingest_feed(feed: Feed, ctx: IngestContext) -> FeedOutcome:
    store = ctx.store
    state = store.feed_state(feed.name)
    url = state.url if state else feed.url
    try:
        result = await ctx.fetcher.fetch_feed(
            feed, url=url, etag=state.etag if state else None,
            last_modified=state.last_modified if state else None)
        if result.not_modified:
            now = ctx.clock()
            store.record_fetch_success(
                feed.name, now, next_poll_after_success(now, feed.interval_s),
                etag=result.etag or (state.etag if state else None),
                last_modified=result.last_modified or (state.last_modified if state else None))
            return FeedOutcome(feed.name, ok=True, not_modified=True)
        parsed = await asyncio.to_thread(parse_feed, result.body, result.headers, result.url)
    except (FetchError, ParseError) as exc:
        return _failed(feed, ctx, state.consecutive_failures if state else 0, exc)

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
    articles = await asyncio.gather(*(_build_article(feed, e, ctx, outcome) for e in fresh))
    for article in articles:
        try:
            article_id = store.add_article(article)
        except StoreError as exc:
            log.error("%s", exc)
            continue
        if article_id is None:
            continue
        outcome.new_articles += 1
        stored = _with_id(article, article_id)
        m, d = match_and_enqueue(stored, ctx)
        outcome.matches += m
        outcome.deliveries += d

    now = ctx.clock()
    store.record_fetch_success(
        feed.name, now, next_poll_after_success(now, feed.interval_s, parsed.ttl_minutes),
        etag=result.etag, last_modified=result.last_modified,
        url=result.permanent_redirect, title=parsed.title or None)
    if result.permanent_redirect:
        log.warning("fetch: feed %r moved permanently to %s; using the new address",
                    feed.name, result.permanent_redirect)
    log.info("ingest: feed %r: %d entries, %d new, %d matches", feed.name,
             len(parsed.entries), outcome.new_articles, outcome.matches)
    return outcome


def match_and_enqueue(article: Article, ctx: IngestContext) -> tuple[int, int]:
    """Match a stored article and write its matches and deliveries in one transaction."""
    matches = ctx.rules().match(article)
    created = ctx.store.record_matches(article, matches, ctx.channels_by_rule(), ctx.clock())
    for m in matches:
        log.info("match: rule %r fired on %r (feed %r, %s): %s", m.rule, article.title,
                 article.feed, m.field, m.snippet)
    return len(matches), created


def _with_id(a: Article, article_id: int) -> Article:
    from dataclasses import replace

    return replace(a, id=article_id)


async def _build_article(feed: Feed, entry: Entry, ctx: IngestContext,
                         outcome: FeedOutcome) -> Article:
    extracted: Extracted | None = None
    page_error: str | None = None
    if entry.link and ctx.fetch_pages:
        try:
            page = await ctx.fetcher.fetch_page(feed, entry.link)
            extracted = await asyncio.to_thread(
                extract_page, page.body, page.url, page.headers.get("content-type"))
        except (FetchError, ExtractError) as exc:
            page_error = str(exc)
            outcome.page_errors.append(page_error)
            log.warning("%s; using the feed's own text", page_error)
    chosen = choose_text(extracted, entry)
    return Article(
        feed=feed.name, entry_id=entry.entry_id, url=entry.link,
        title=entry.title or (extracted.title if extracted and extracted.title else ""),
        summary=entry.summary, body=chosen.body, text_source=chosen.source,
        published=entry.published, fetched_at=ctx.clock(),
        author=entry.author or (extracted.author if extracted else None),
        language=extracted.language if extracted else None,
        sitename=extracted.sitename if extracted else None,
        tags=feed.tags, page_error=page_error)


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
    ctx.store.record_fetch_failure(feed.name, now, when, message)
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
