"""Articles, sources and the story index on PostgreSQL.

One article per canonical URL is a unique index: of two daemons storing copies of
one page at once, one insert waits for the other's commit and then stores nothing
(the caller records its entry as a source instead).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from watcher.core.intents import NewArticle, NewSource, PageArrived
from watcher.core.models import Article, StoryRef
from watcher.core.records import SourceRecord, StoryCandidate
from watcher.store.postgres.base import PgBase, Row


class ArticlesPg(PgBase):
    def known_entries(self, feed: str, entry_ids: Iterable[str]) -> set[str]:
        ids = list(entry_ids)
        return {r["entry_id"] for r in self._rows(
            "SELECT entry_id FROM article_sources WHERE feed = %s AND entry_id = ANY(%s) "
            "UNION SELECT entry_id FROM pruned_entries WHERE feed = %s AND entry_id = ANY(%s)",
            [feed, ids, feed, ids])}

    def articles_at(self, canonical_urls: Iterable[str]) -> dict[str, int]:
        return {r["canonical_url"]: r["id"] for r in self._rows(
            "SELECT canonical_url, id FROM articles WHERE canonical_url = ANY(%s)",
            [list(dict.fromkeys(canonical_urls))])}

    def add_article(self, new: NewArticle) -> int | None:
        a = new.article
        with self._tx():
            rows = self._rows(
                "INSERT INTO articles (feed, entry_id, url, title, summary, body, text_source, "
                "page_error, author, language, sitename, tags, published_at, fetched_at, "
                "canonical_url, story_id, signature, page_pending) VALUES (%s, %s, %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
                "RETURNING id",
                [a.feed, a.entry_id, a.url, a.title, a.summary, a.body, a.text_source,
                 a.page_error, a.author, a.language, a.sitename, Jsonb(list(a.tags)),
                 a.published, a.fetched_at, a.canonical_url,
                 new.story.id if new.story else None, a.signature, a.page_pending])
            if not rows:
                return None
            article_id = int(rows[0]["id"])
            if new.story is None:
                self._exec("UPDATE articles SET story_id = id WHERE id = %s", [article_id])
            added = self._exec(
                "INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [a.feed, a.entry_id, article_id, a.url, a.title, a.fetched_at])
            if not added:  # this entry is already a source of another article
                self._exec("DELETE FROM articles WHERE id = %s", [article_id])
                return None
            self._many("INSERT INTO story_keys (key, article_id) VALUES (%s, %s) "
                       "ON CONFLICT DO NOTHING", [(k, article_id) for k in new.story_keys])
            return article_id

    def add_source(self, new: NewSource) -> bool:
        return bool(self._exec(
            "INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [new.feed, new.entry_id, new.article_id, new.url, new.title, new.seen_at]))

    def pending_pages(self, feed: str, limit: int) -> list[Article]:
        return [_article(r) for r in self._rows(
            "SELECT * FROM articles WHERE feed = %s AND page_pending ORDER BY id DESC LIMIT %s",
            [feed, limit])]

    def page_arrived(self, arrived: PageArrived) -> None:
        with self._tx():
            if arrived.body is not None:
                self._exec(
                    "UPDATE articles SET body = %s, text_source = %s, signature = %s, "
                    "author = COALESCE(author, %s), language = COALESCE(%s, language), "
                    "sitename = COALESCE(%s, sitename) WHERE id = %s",
                    [arrived.body, arrived.text_source, arrived.signature, arrived.author,
                     arrived.language, arrived.sitename, arrived.article_id])
            if arrived.story is not None:
                self._exec("UPDATE articles SET story_id = %s WHERE id = %s",
                           [arrived.story.id, arrived.article_id])
            self._many("INSERT INTO story_keys (key, article_id) VALUES (%s, %s) "
                       "ON CONFLICT DO NOTHING",
                       [(k, arrived.article_id) for k in arrived.story_keys])
            self._exec("UPDATE articles SET page_pending = false, page_error = %s WHERE id = %s",
                       [arrived.page_error, arrived.article_id])

    def story_size(self, story_id: int) -> int:
        return int(self._value("SELECT count(*) FROM articles WHERE story_id = %s", [story_id]))

    def story_candidates(self, keys: Sequence[int], since: datetime) -> list[StoryCandidate]:
        if not keys:
            return []
        # here: identity carries numpy and courlan, which reading commands need not load
        from watcher.core.identity import site_of

        return [StoryCandidate(r["id"], StoryRef(r["story_id"], r["feed"], r["entry_id"]),
                               bytes(r["signature"]), site_of(r["link"], r["own_feed"]),
                               r["body"], r["title"]) for r in self._rows(
            "SELECT a.id, a.signature, a.body, a.title, COALESCE(a.canonical_url, a.url) "
            "AS link, a.feed AS own_feed, r.id AS story_id, r.feed, r.entry_id "
            "FROM articles a JOIN articles r ON r.id = a.story_id WHERE a.id IN "
            "(SELECT article_id FROM story_keys WHERE key = ANY(%s)) "
            "AND a.fetched_at >= %s AND a.signature IS NOT NULL", [list(keys), since])]

    def story_of(self, article_id: int) -> StoryRef | None:
        rows = self._rows(
            "SELECT r.id, r.feed, r.entry_id FROM articles a JOIN articles r "
            "ON r.id = COALESCE(a.story_id, a.id) WHERE a.id = %s", [article_id])
        return StoryRef(rows[0]["id"], rows[0]["feed"], rows[0]["entry_id"]) if rows else None

    def story_sources(self, story_ids: Iterable[int]) -> dict[int, list[SourceRecord]]:
        ids = list(dict.fromkeys(story_ids))
        out: dict[int, list[SourceRecord]] = {i: [] for i in ids}
        for r in self._rows(
                "SELECT a.story_id, s.feed, s.entry_id, s.url, s.title, s.seen_at, "
                "s.article_id FROM article_sources s JOIN articles a ON a.id = s.article_id "
                "WHERE a.story_id = ANY(%s) ORDER BY s.seen_at, s.feed", [ids]):
            story = r.pop("story_id")
            out[story].append(SourceRecord(**r))
        return out

    def unmatched_articles(self, limit: int = 1000) -> list[Article]:
        return [_article(r) for r in self._rows(
            "SELECT * FROM articles WHERE matched_at IS NULL ORDER BY id LIMIT %s", [limit])]

    def iter_articles(self, since: datetime, batch: int = 500) -> Iterator[list[Article]]:
        last_id: int | None = None
        while True:
            rows = self._rows(
                "SELECT * FROM articles WHERE fetched_at >= %s AND (%s::bigint IS NULL "
                "OR id < %s) ORDER BY id DESC LIMIT %s", [since, last_id, last_id, batch])
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield [_article(r) for r in rows]

    def count_articles_since(self, since: datetime) -> int:
        return int(self._value("SELECT count(*) FROM articles WHERE fetched_at >= %s", [since]))

    def article(self, article_id: int) -> Article | None:
        rows = self._rows("SELECT * FROM articles WHERE id = %s", [article_id])
        return _article(rows[0]) if rows else None


def _article(r: Row) -> Article:
    sig: Any = r["signature"]
    return Article(
        id=r["id"], feed=r["feed"], entry_id=r["entry_id"], url=r["url"], title=r["title"],
        summary=r["summary"], body=r["body"], text_source=r["text_source"],
        page_error=r["page_error"], author=r["author"], language=r["language"],
        sitename=r["sitename"], tags=tuple(r["tags"]), published=r["published_at"],
        fetched_at=r["fetched_at"], canonical_url=r["canonical_url"],
        story_id=r["story_id"], signature=bytes(sig) if sig is not None else None,
        page_pending=bool(r["page_pending"]))
