"""A sitemap source: a site's sitemaps (news sitemaps best) read for new article URLs.

The pages found are fetched, extracted, stored and matched exactly like a feed's
entries (`ingest.ingest_entries`). What the source remembers between polls (the
validators of every sitemap, an index's sitemaps, where the site keeps them, when it
was last polled) is its memo in the store, written with the poll.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from watcher.core.errors import FetchError, ParseError
from watcher.core.intents import FeedFetched
from watcher.core.models import Feed, FeedState, ParsedFeed
from watcher.core.schedule import next_poll_after_success
from watcher.core.sitemap import (
    USUAL_PLACES,
    Sitemap,
    SitemapReader,
    SitemapUrl,
    is_site,
    newest_first,
    robots_sitemaps,
    since_for,
    sitemap_entries,
    w3c_datetime,
)
from watcher.service.ingest import (
    FeedOutcome,
    IngestContext,
    fetch_failed,
    ingest_entries,
    poll_policy,
)

log = logging.getLogger("watcher.service.ingest")


@dataclass
class SitemapMemo:
    """What a sitemap source remembers between polls."""

    polled: datetime | None = None
    roots: list[str] = field(default_factory=list)  # where the site keeps its sitemaps
    # sitemap URL -> {"etag", "last_modified", "children": [[url, iso date or None]]}
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, state: FeedState | None) -> SitemapMemo:
        try:
            data = json.loads(state.memo) if state and state.memo else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict) or data.get("kind") != "sitemap":
            return cls()  # none yet, or the source was a page before: start afresh
        return cls(w3c_datetime(data.get("polled")), list(data.get("roots") or []),
                   dict(data.get("maps") or {}))

    def dump(self) -> str:
        return json.dumps({"kind": "sitemap",
                           "polled": self.polled.isoformat() if self.polled else None,
                           "roots": self.roots, "maps": self.maps}, separators=(",", ":"))


@dataclass
class _Walk:
    """One poll's reading of a site's sitemaps."""

    feed: Feed
    ctx: IngestContext
    old: SitemapMemo
    since: datetime
    maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    urls: list[SitemapUrl] = field(default_factory=list)
    read: list[str] = field(default_factory=list)  # sitemaps that answered (a 304 too)
    errors: list[FetchError | ParseError] = field(default_factory=list)

    async def one(self, url: str, quiet: bool = False) -> Sitemap | None:
        """Fetch and parse one sitemap; None when it is unchanged (304) or failed."""
        limits, old = self.ctx.sitemaps, self.old.maps.get(url, {})
        reader = SitemapReader(url, limits.max_urls)
        try:
            result = await self.ctx.fetcher.fetch_sitemap(
                self.feed, url, reader.feed, etag=old.get("etag"),
                last_modified=old.get("last_modified"))
            if result.not_modified:
                self.maps[url] = old
                self.read.append(url)
                return None
            sitemap = reader.close()
        except (FetchError, ParseError) as exc:
            self.errors.append(exc)
            if not quiet:
                log.warning("%s; its URLs are skipped this poll", exc)
            return None
        if sitemap.kind is None:
            self.errors.append(ParseError(f"parse: feed {self.feed.name!r}: {url} is not a "
                                          "sitemap"))
            return None
        if sitemap.cut:
            log.warning("parse: feed %r: sitemap %s lists more than %d URLs; the rest are "
                        "not read", self.feed.name, url, limits.max_urls)
        self.read.append(url)
        self.maps[url] = {"etag": result.etag, "last_modified": result.last_modified}
        if sitemap.kind == "index":
            # Only those that may still matter: an index answering 304 later has the
            # same dates, and a sitemap older than `since` then is older still.
            self.maps[url]["children"] = [[u.loc, u.when.isoformat() if u.when else None]
                                          for u in newest_first(sitemap.urls, self.since)]
        return sitemap

    async def run(self, roots: list[str], quiet_roots: bool) -> None:
        limits = self.ctx.sitemaps
        queue: list[tuple[str, int, str | None]] = [(r, 0, None) for r in roots]
        seen: set[str] = set()
        while queue:
            url, depth, parent = queue.pop(0)
            if url in seen:
                log.warning("parse: feed %r: sitemap index %s lists %s, already read this "
                            "poll (a loop); not read again", self.feed.name, parent, url)
                continue
            if len(seen) >= limits.max_files:
                log.warning("parse: feed %r: more than %d sitemaps; the rest are not read "
                            "this poll", self.feed.name, limits.max_files)
                return
            seen.add(url)
            sitemap = await self.one(url, quiet=quiet_roots and parent is None)
            if sitemap is not None and sitemap.kind == "urlset":
                self.urls.extend(sitemap.urls)
                continue
            children = _children(sitemap, self.maps.get(url))
            if children is None:
                continue
            if depth >= limits.max_depth:
                log.warning("parse: feed %r: sitemap index %s is nested deeper than %d; "
                            "its sitemaps are not read", self.feed.name, url, limits.max_depth)
                continue
            queue += [(c.loc, depth + 1, url) for c in newest_first(children, self.since)]


def _children(sitemap: Sitemap | None, memo: dict[str, Any] | None) -> list[SitemapUrl] | None:
    """An index's sitemaps: as just read, or as remembered when it answered 304."""
    if sitemap is not None:
        return sitemap.urls if sitemap.kind == "index" else None
    if memo is None or "children" not in memo:
        return None
    return [SitemapUrl(loc, w3c_datetime(when)) for loc, when in memo["children"]]


async def _roots(feed: Feed, url: str, memo: SitemapMemo, ctx: IngestContext
                 ) -> tuple[list[str], bool]:
    """Where to read: the configured sitemap, the site's as found before, or those its
    robots.txt names, else the usual places. True: the roots are only guesses."""
    if not is_site(url):
        return [url], False
    if memo.roots:
        return memo.roots, False
    robots = url.rstrip("/") + "/robots.txt"
    try:
        result = await ctx.fetcher.fetch_feed(feed, url=robots)
        named = robots_sitemaps(result.body.decode("utf-8", "replace"), result.url)
    except FetchError as exc:
        log.info("%s; trying the usual places of sitemaps", exc)
        named = []
    if named:
        return named, False
    return [url.rstrip("/") + place for place in USUAL_PLACES], True


async def ingest_sitemap(feed: Feed, ctx: IngestContext) -> FeedOutcome:
    state = ctx.store.feed_state(feed.name)
    url = state.url if state else feed.url
    memo = SitemapMemo.load(state)
    now = ctx.clock()
    walk = _Walk(feed, ctx, memo, since_for(memo.polled, now,
                                            timedelta(seconds=feed.backfill_s)))
    try:
        roots, guessed = await _roots(feed, url, memo, ctx)
    except FetchError as exc:
        return fetch_failed(feed, url, state, exc, ctx)
    await walk.run(roots, quiet_roots=guessed)
    if not walk.read and memo.roots:
        # The sitemaps found before are gone: look for the site's sitemaps afresh.
        try:
            roots, guessed = await _roots(feed, url, SitemapMemo(), ctx)
        except FetchError as exc:
            return fetch_failed(feed, url, state, exc, ctx)
        await walk.run(roots, quiet_roots=guessed)
    if not walk.read:
        error = walk.errors[0] if walk.errors and not guessed else FetchError(
            f"fetch: feed {feed.name!r}: found no sitemap at {url} (robots.txt names none, "
            f"and none at {', '.join(USUAL_PLACES)})")
        return fetch_failed(feed, url, state, error, ctx)
    entries = sitemap_entries(walk.urls, walk.since)
    outcome = await ingest_entries(feed, ParsedFeed(title="", entries=tuple(entries)), ctx)
    now = ctx.clock()
    # A site's sitemaps are remembered once found (of the usual places, those that
    # answered); when none of them answers any more, they are looked for again.
    roots_kept = ([r for r in roots if r in walk.read] if guessed else roots) \
        if is_site(url) else []
    new_memo = SitemapMemo(now, roots_kept, walk.maps)
    ctx.store.record_poll(FeedFetched(
        feed.name, now,
        next_poll_after_success(now, poll_policy(feed, ctx.max_server_wait_s),
                                [e.published for e in entries]),
        etag=None, last_modified=None, memo=new_memo.dump()))
    log.info("ingest: feed %r: %d sitemap(s) read, %d URLs, %d recent, %d new, %d matches",
             feed.name, len(walk.read), len(walk.urls), len(entries), outcome.new_articles,
             outcome.matches)
    return outcome
