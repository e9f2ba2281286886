"""A page source: a section or front page whose new article links are its entries.

New means on the page now and not at the previous poll; the previous poll's links
are the source's memo in the store. The first poll records what is there and
alerts on nothing: the links carry no dates, and all of them are old news.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

from watcher.core.errors import FetchError
from watcher.core.intents import FeedFetched
from watcher.core.models import Entry, Feed, FeedState, ParsedFeed
from watcher.core.schedule import next_poll_after_success
from watcher.service import metrics
from watcher.service.ingest import (
    FeedOutcome,
    IngestContext,
    fetch_failed,
    ingest_entries,
    poll_policy,
)

log = logging.getLogger("watcher.service.ingest")


def _previous(state: FeedState | None) -> list[str] | None:
    """The links the last poll saw; None before the first poll (or after a change of
    the source's URL or type)."""
    try:
        data = json.loads(state.memo) if state and state.memo else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("kind") != "page":
        return None
    return [str(u) for u in data.get("links") or []]


async def ingest_page(feed: Feed, ctx: IngestContext) -> FeedOutcome:
    state = ctx.store.feed_state(feed.name)
    url = state.url if state else feed.url
    previous = _previous(state)
    started = time.perf_counter()
    try:
        result = await ctx.fetcher.fetch_feed(
            feed, url=url, etag=state.etag if state and previous is not None else None,
            last_modified=state.last_modified if state and previous is not None else None)
    except FetchError as exc:
        return fetch_failed(feed, url, state, exc, ctx)
    finally:
        metrics.FETCH_SECONDS.observe(time.perf_counter() - started)
    policy = poll_policy(feed, ctx.max_server_wait_s)
    if result.not_modified:
        now = ctx.clock()
        ctx.store.record_poll(FeedFetched(
            feed.name, now, next_poll_after_success(now, policy), etag=result.etag or
            (state.etag if state else None), last_modified=result.last_modified or
            (state.last_modified if state else None)))
        return FeedOutcome(feed.name, ok=True, not_modified=True)
    from watcher.extract.links import article_links  # lxml, courlan: page sources only

    links = await asyncio.to_thread(article_links, result.body, result.url, feed.links,
                                    feed.pattern)
    seen = set(previous or ())
    entries = [] if previous is None else [
        Entry(entry_id=link, link=link, title=text, summary="", content="", published=None)
        for link, text in links if link not in seen]
    outcome = await ingest_entries(feed, ParsedFeed(title="", entries=tuple(entries)), ctx)
    now = ctx.clock()
    memo = json.dumps({"kind": "page", "links": [link for link, _ in links]},
                      separators=(",", ":"))
    ctx.store.record_poll(FeedFetched(
        feed.name, now, next_poll_after_success(now, policy), etag=result.etag,
        last_modified=result.last_modified, url=result.permanent_redirect, memo=memo))
    if previous is None:
        log.info("ingest: feed %r: first look at page %s: %d article links recorded, none "
                 "alerted", feed.name, url, len(links))
    else:
        log.info("ingest: feed %r: %d article links, %d new, %d matches", feed.name,
                 len(links), outcome.new_articles, outcome.matches)
    return outcome
