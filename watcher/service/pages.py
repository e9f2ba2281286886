"""Article pages: fetched side by side, waited for a bounded time, and when one comes
after its article was stored from the feed's text, the article is improved.

A feed's entries never wait on one slow page for longer than `page_wait`: they are
stored and matched with the feed's own text, and the page, when it comes, replaces
that text and is matched again (a rule it newly matches alerts; one that matched
already does not alert twice). At most `max_pages` pages are fetched per feed per
poll; the articles over that are stored with their feed's text and their pages come
in the feed's later polls (they are marked in the store, so a restart resumes them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from watcher.core.decide import StoryHit, place_in_story
from watcher.core.errors import ExtractError, FetchError
from watcher.core.intents import PageArrived
from watcher.core.models import Article, Entry, Extracted, Feed
from watcher.extract.choose import keep_text
from watcher.service import metrics

if TYPE_CHECKING:
    from watcher.service.ingest import IngestContext

log = logging.getLogger("watcher.service.ingest")


@dataclass(frozen=True)
class Page:
    """What fetching and extracting one page gave: its text, or why not."""

    extracted: Extracted | None
    url: str | None
    error: str | None = None


async def fetch_and_extract(feed: Feed, url: str, entry: Entry, ctx: IngestContext) -> Page:
    try:
        # Kept compressed: the extraction worker inflates it, off this process.
        page = await ctx.fetcher.fetch_page(feed, url, decode=False)
        started = time.perf_counter()
        extracted = await ctx.extractor.extract(page.body, page.url,
                                                page.headers.get("content-type"),
                                                page.undecoded, entry, key=feed.name)
        metrics.EXTRACT_SECONDS.observe(time.perf_counter() - started)
        return Page(extracted, page.url)
    except (FetchError, ExtractError) as exc:
        log.warning("%s; using the feed's own text", exc)
        return Page(None, None, str(exc))


class PageJobs:
    """Page work that outlives its feed's poll, by feed and article: waited for by
    `run --once`, cancelled when the daemon stops (the pages stay marked as to
    come, and are fetched again after the restart)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_feed: dict[str, set[int]] = {}

    def track(self, feed: str, article_id: int,
              work: Coroutine[object, object, None]) -> None:
        ids = self._by_feed.setdefault(feed, set())
        ids.add(article_id)
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            ids.discard(article_id)
            if not t.cancelled() and t.exception() is not None:
                log.error("ingest: feed %r: the page of article #%d could not be taken in: "
                          "%s", feed, article_id, t.exception())
        task.add_done_callback(done)

    def under_way(self, feed: str) -> set[int]:
        return set(self._by_feed.get(feed, ()))

    async def wait(self) -> None:
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class PageBatch:
    """The pages of one poll's new entries: the newest `max_pages` that have a link
    are fetched now, side by side; the others wait for later polls."""

    def __init__(self, feed: Feed, entries: Iterable[Entry], ctx: IngestContext) -> None:
        linked = [e for e in entries if e.link] if ctx.fetch_pages else []
        now = linked[-ctx.max_pages:]  # entries come oldest first
        self.deferred = {e.entry_id for e in linked[:len(linked) - len(now)]}
        ctx.extractor.expect(len(now))
        loop = asyncio.get_running_loop()
        self.tasks = {e.entry_id: loop.create_task(fetch_and_extract(feed, e.link or "", e, ctx))
                      for e in now}

    async def wait(self, timeout: float | None, hurry: asyncio.Event | None) -> None:
        """Until every page is in, `timeout` passes, or the daemon is stopping."""
        if not self.tasks:
            return
        waiting: set[asyncio.Future[Any]] = set(self.tasks.values())
        stop = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
        try:
            if stop is not None:
                waiting.add(stop)
            deadline = None if timeout is None else time.monotonic() + timeout
            while any(not t.done() for t in self.tasks.values()):
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or (stop is not None and stop.done()):
                    return
                await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                waiting = {t for t in waiting if not t.done()} | ({stop} if stop else set())
        finally:
            if stop is not None:
                stop.cancel()

    def page(self, entry: Entry) -> Page | None:
        task = self.tasks.get(entry.entry_id)
        return task.result() if task is not None and task.done() else None

    def to_come(self, entry: Entry) -> bool:
        """Its article is stored with the feed's text, and the page comes later."""
        task = self.tasks.get(entry.entry_id)
        return entry.entry_id in self.deferred or (task is not None and not task.done())

    def hand_over(self, feed: Feed, stored: dict[str, int], ctx: IngestContext) -> None:
        """Pages still under way improve their stored articles when they come."""
        for entry_id, task in self.tasks.items():
            if task.done():
                continue
            article_id = stored.get(entry_id)
            if article_id is None:  # not stored after all (a copy): nothing to improve
                task.cancel()
                continue
            ctx.jobs.track(feed.name, article_id,
                           _improve_when_done(feed, article_id, task, ctx))


async def _improve_when_done(feed: Feed, article_id: int, task: asyncio.Task[Page],
                             ctx: IngestContext) -> None:
    page = await task
    await improve(feed, article_id, page, ctx)


def resume_pages(feed: Feed, ctx: IngestContext, room: int) -> None:
    """Start the pages of the feed's stored articles still waiting for theirs, as many
    as `room` allows besides those under way."""
    busy = ctx.jobs.under_way(feed.name)
    room -= len(busy)
    if room <= 0 or not ctx.fetch_pages:
        return
    for article in ctx.store.pending_pages(feed.name, room + len(busy)):
        if room <= 0:
            break
        if article.id is None or article.id in busy or not article.url:
            continue
        room -= 1
        ctx.jobs.track(feed.name, article.id, _fetch_then_improve(feed, article, ctx))


async def _fetch_then_improve(feed: Feed, article: Article, ctx: IngestContext) -> None:
    assert article.id is not None and article.url is not None
    page = await fetch_and_extract(feed, article.url, entry_of(article), ctx)
    await improve(feed, article.id, page, ctx)


def entry_of(article: Article) -> Entry:
    """The feed entry an article was stored from: the text to fall back on."""
    return Entry(entry_id=article.entry_id, link=article.url, title=article.title,
                 summary=article.summary,
                 content=article.body if article.text_source == "feed-content" else "",
                 published=article.published, author=article.author)


async def improve(feed: Feed, article_id: int, page: Page, ctx: IngestContext) -> None:
    """The page came: keep its text when it is the better one, and match it again."""
    from watcher.service.ingest import match_and_enqueue

    article = ctx.store.article(article_id)
    if article is None:  # pruned meanwhile
        return
    if page.extracted is None:
        ctx.store.page_arrived(PageArrived(article_id, page_error=page.error))
        return
    kept = page.extracted.kept or keep_text(page.extracted, entry_of(article),
                                             sign=ctx.stories is not None)
    if kept.source != "page":
        ctx.store.page_arrived(PageArrived(article_id))
        return
    improved = replace(article, body=kept.body, text_source="page", signature=kept.signature,
                       language=page.extracted.language or article.language)
    with ctx.store.transaction():  # placed and written while its keys are locked
        hit, keys = _place_alone(improved, ctx)
        ctx.store.page_arrived(PageArrived(
            article_id, body=kept.body, text_source="page", signature=kept.signature,
            story_keys=keys, story=hit.story if hit else None, author=page.extracted.author,
            language=page.extracted.language, sitename=page.extracted.sitename))
    story = hit.story if hit else ctx.store.story_of(article_id)
    if story is None:
        return
    improved = replace(improved, story_id=story.id)
    log.info("ingest: feed %r: the page of %r came; its text replaces the feed's",
             feed.name, article.title)
    _, created = match_and_enqueue(improved, story, ctx)
    if created and ctx.on_alerts is not None:
        ctx.on_alerts()


def _place_alone(article: Article, ctx: IngestContext) -> tuple[StoryHit | None,
                                                               tuple[int, ...]]:
    """Band keys for the page's text, and the story it joins if the article's own
    story holds nothing else yet (a story already alerted on keeps its articles)."""
    if ctx.stories is None or article.signature is None or article.id is None:
        return None, ()
    from watcher.core.identity import band_keys, from_bytes, site_of  # numpy: when used

    sig = from_bytes(article.signature)
    keys = tuple(band_keys(sig))
    if article.story_id != article.id or ctx.store.story_size(article.id) > 1:
        return None, keys
    ctx.store.lock_story_keys(keys)
    candidates = [c for c in ctx.store.story_candidates(keys, article.fetched_at -
                                                        ctx.stories.window)
                  if c.article_id != article.id]
    hit = place_in_story(sig, candidates, ctx.stories.threshold,
                         site_of(article.canonical_url or article.url, article.feed),
                         article.body, article.title)
    return hit, keys
