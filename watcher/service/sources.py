"""One source polled, whatever lists its articles: a feed, a site's sitemaps, a page."""

from __future__ import annotations

from watcher.core.models import Feed
from watcher.service.ingest import FeedOutcome, IngestContext, ingest_feed
from watcher.service.sections import ingest_page
from watcher.service.sitemaps import ingest_sitemap


async def ingest_source(feed: Feed, ctx: IngestContext) -> FeedOutcome:
    if feed.kind == "sitemap":
        return await ingest_sitemap(feed, ctx)
    if feed.kind == "page":
        return await ingest_page(feed, ctx)
    return await ingest_feed(feed, ctx)
