"""Articles, their sources (every feed entry that carried one), and the story index."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from watcher.core.intents import NewArticle, NewSource, PageArrived
from watcher.core.models import Article, StoryRef
from watcher.core.records import SourceRecord, StoryCandidate
from watcher.store.sqlite.base import Row, SqliteBase, from_ts, marks, must_ts, ts

# Bound parameters per statement, well under SQLite's limit.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(values), _CHUNK):
        yield values[i:i + _CHUNK]


class ArticlesStore(SqliteBase):
    def known_entries(self, feed: str, entry_ids: Iterable[str]) -> set[str]:
        """The feed's entries seen before: stored as a source, or pruned since."""
        known: set[str] = set()
        for chunk in _chunks(list(entry_ids)):
            m = marks(chunk)
            known.update(r["entry_id"] for r in self._rows(
                f"SELECT entry_id FROM article_sources WHERE feed = ? AND entry_id IN ({m}) "
                f"UNION SELECT entry_id FROM pruned_entries WHERE feed = ? "
                f"AND entry_id IN ({m})", [feed, *chunk, feed, *chunk]))
        return known

    def articles_at(self, canonical_urls: Iterable[str]) -> dict[str, int]:
        """canonical URL -> id of the newest article stored at it, for those stored."""
        found: dict[str, int] = {}
        for chunk in _chunks(list(dict.fromkeys(canonical_urls))):
            for r in self._rows(
                    f"SELECT canonical_url, max(id) AS id FROM articles WHERE canonical_url IN "
                    f"({marks(chunk)}) GROUP BY canonical_url", list(chunk)):
                found[r["canonical_url"]] = r["id"]
        return found

    def add_article(self, new: NewArticle) -> int | None:
        """Store an article, its first source and its story keys; None when its
        (feed, entry id) is already known."""
        a = new.article
        with self._atomic():
            cur = self._exec(
                "INSERT INTO articles (feed, entry_id, url, title, summary, body, text_source, "
                "page_error, author, language, sitename, tags, published_at, fetched_at, "
                "canonical_url, story_id, signature, page_pending) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(feed, entry_id) DO NOTHING",
                [a.feed, a.entry_id, a.url, a.title, a.summary, a.body, a.text_source,
                 a.page_error, a.author, a.language, a.sitename, json.dumps(list(a.tags)),
                 ts(a.published), ts(a.fetched_at), a.canonical_url,
                 new.story.id if new.story else None, a.signature, int(a.page_pending)])
            if not cur.rowcount:
                return None
            article_id = cur.lastrowid
            assert article_id is not None
            if new.story is None:
                self._exec("UPDATE articles SET story_id = id WHERE id = ?", [article_id])
            cur = self._exec(
                "INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [a.feed, a.entry_id, article_id, a.url, a.title, ts(a.fetched_at)])
            if not cur.rowcount:  # this entry is already a source of another article
                self._exec("DELETE FROM articles WHERE id = ?", [article_id])
                return None
            if new.story_keys:
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO story_keys (key, article_id) VALUES (?, ?)",
                    [(k, article_id) for k in new.story_keys])
            return article_id

    def pending_pages(self, feed: str, limit: int) -> list[Article]:
        """The feed's articles whose page is still to come, newest first."""
        return [_article(r) for r in self._rows(
            "SELECT * FROM articles WHERE feed = ? AND page_pending = 1 ORDER BY id DESC "
            "LIMIT ?", [feed, limit])]

    def page_arrived(self, arrived: PageArrived) -> None:
        """The article's page came (or failed for good): its text, story and keys."""
        with self._atomic():
            if arrived.body is not None:
                self._exec(
                    "UPDATE articles SET body = ?, text_source = ?, signature = ?, "
                    "author = COALESCE(author, ?), language = COALESCE(?, language), "
                    "sitename = COALESCE(?, sitename) WHERE id = ?",
                    [arrived.body, arrived.text_source, arrived.signature, arrived.author,
                     arrived.language, arrived.sitename, arrived.article_id])
            if arrived.story is not None:
                self._exec("UPDATE articles SET story_id = ? WHERE id = ?",
                           [arrived.story.id, arrived.article_id])
            if arrived.story_keys:
                self.db.conn.executemany(
                    "INSERT OR IGNORE INTO story_keys (key, article_id) VALUES (?, ?)",
                    [(k, arrived.article_id) for k in arrived.story_keys])
            self._exec("UPDATE articles SET page_pending = 0, page_error = ? WHERE id = ?",
                       [arrived.page_error, arrived.article_id])

    def story_size(self, story_id: int) -> int:
        """How many stored articles the story holds."""
        return int(self._value("SELECT count(*) FROM articles WHERE story_id = ?", [story_id]))

    def add_source(self, new: NewSource) -> bool:
        """Another copy of a stored article; False when the entry was known already."""
        with self._atomic():
            cur = self._exec(
                "INSERT INTO article_sources (feed, entry_id, article_id, url, title, seen_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [new.feed, new.entry_id, new.article_id, new.url, new.title, ts(new.seen_at)])
        return bool(cur.rowcount)

    def story_candidates(self, keys: Sequence[int], since: datetime) -> list[StoryCandidate]:
        """Articles fetched since `since` sharing a band key, with their stories."""
        if not keys:
            return []
        # here: identity carries numpy and courlan, which reading commands need not load
        from watcher.core.identity import site_of

        return [StoryCandidate(r["id"], StoryRef(r["story_id"], r["feed"], r["entry_id"]),
                               r["signature"], site_of(r["link"], r["own_feed"]), r["body"],
                               r["title"])
                for r in self._rows(
            "SELECT a.id, a.signature, a.body, a.title, COALESCE(a.canonical_url, a.url) AS link, "
            "a.feed AS own_feed, r.id AS story_id, r.feed, r.entry_id FROM articles a "
            "JOIN articles r ON r.id = a.story_id WHERE a.id IN "
            f"(SELECT article_id FROM story_keys WHERE key IN ({marks(keys)})) "
            "AND a.fetched_at >= ? AND a.signature IS NOT NULL", [*keys, ts(since)])]

    def story_of(self, article_id: int) -> StoryRef | None:
        """The story an article belongs to, named by its first article."""
        rows = self._rows(
            "SELECT r.id, r.feed, r.entry_id FROM articles a JOIN articles r "
            "ON r.id = COALESCE(a.story_id, a.id) WHERE a.id = ?", [article_id])
        return StoryRef(rows[0]["id"], rows[0]["feed"], rows[0]["entry_id"]) if rows else None

    def story_sources(self, story_ids: Iterable[int]) -> dict[int, list[SourceRecord]]:
        """Every copy of each story: each feed entry that carried it, first seen first."""
        out: dict[int, list[SourceRecord]] = {}
        for story_id in dict.fromkeys(story_ids):
            out[story_id] = [SourceRecord(
                feed=r["feed"], entry_id=r["entry_id"], url=r["url"], title=r["title"],
                seen_at=must_ts(r["seen_at"]), article_id=r["article_id"]) for r in self._rows(
                "SELECT s.feed, s.entry_id, s.url, s.title, s.seen_at, s.article_id "
                "FROM article_sources s JOIN articles a ON a.id = s.article_id "
                "WHERE a.story_id = ? ORDER BY s.seen_at, s.feed", [story_id])]
        return out

    def unmatched_articles(self, limit: int = 1000) -> list[Article]:
        """Articles stored but not yet matched: a crash came between the two steps."""
        return [_article(r) for r in self._rows(
            "SELECT * FROM articles WHERE matched_at IS NULL ORDER BY id LIMIT ?", [limit])]

    def iter_articles(self, since: datetime, batch: int = 500) -> Iterator[list[Article]]:
        """Stored articles fetched at or after `since`, newest first, in batches (backtests)."""
        last_id: int | None = None
        while True:
            rows = self._rows(
                "SELECT * FROM articles WHERE fetched_at >= ? AND (? IS NULL OR id < ?) "
                "ORDER BY id DESC LIMIT ?", [ts(since), last_id, last_id, batch])
            if not rows:
                return
            last_id = rows[-1]["id"]
            yield [_article(r) for r in rows]

    def count_articles_since(self, since: datetime) -> int:
        return int(self._value("SELECT count(*) FROM articles WHERE fetched_at >= ?",
                               [ts(since)]))

    def article(self, article_id: int) -> Article | None:
        rows = self._rows("SELECT * FROM articles WHERE id = ?", [article_id])
        return _article(rows[0]) if rows else None


def _article(r: Row) -> Article:
    return Article(
        id=r["id"], feed=r["feed"], entry_id=r["entry_id"], url=r["url"],
        title=r["title"], summary=r["summary"], body=r["body"],
        text_source=r["text_source"], page_error=r["page_error"], author=r["author"],
        language=r["language"], sitename=r["sitename"], tags=tuple(json.loads(r["tags"])),
        published=from_ts(r["published_at"]), fetched_at=must_ts(r["fetched_at"]),
        canonical_url=r.get("canonical_url"), story_id=r.get("story_id"),
        page_pending=bool(r.get("page_pending")))
