"""What was stored, for people: full-text search, one article's record, the status
report, and retention."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from typing import Any

from watcher.core.errors import StoreError
from watcher.core.intents import Retention
from watcher.core.records import (
    ArticleRecord,
    FeedCounts,
    MatchRecord,
    ProblemRecord,
    SearchHit,
    StatusReport,
)
from watcher.store.sqlite.articles import ArticlesStore, _article
from watcher.store.sqlite.base import Row, from_ts, must_ts, ts
from watcher.store.sqlite.outbox import OutboxStore

# Articles past retention, unless an alert of theirs is still waiting to go out.
_PRUNABLE = (
    "FROM articles a WHERE ((a.fetched_at < ? AND NOT EXISTS (SELECT 1 FROM matches m "
    "  WHERE m.article_id = a.id)) OR a.fetched_at < ?) "
    "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.article_id = a.id "
    "  AND d.status IN ('pending', 'retrying'))")


# The order of search results, and the index (m014) that walks it.
_NEWEST = "COALESCE(a.published_at, a.fetched_at)"
# A query with at least this many matches is broad: sorting them all costs more than
# searching the newest articles first. Below it, sorting them is cheap.
_BROAD = 2000
_WINDOW_PER_HIT = 20  # the first window: articles searched per result wanted


def _cutoffs(now: datetime, retention: Retention) -> list[str | None]:
    return [ts(now - timedelta(days=retention.keep_days)),
            ts(now - timedelta(days=retention.keep_matched_days))]


def _dicts(db: Any, sql: str, params: list[Any]) -> list[Row]:
    """Rows as dicts, SQLite's errors as they are (a bad query is the caller's to name)."""
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


class ArchiveStore(ArticlesStore, OutboxStore):
    def search(self, query: str, since: datetime | None = None, feed: str | None = None,
               limit: int = 20, before_id: int | None = None) -> list[SearchHit]:
        """Full-text search (watcher.core.search's syntax), newest first, with a
        highlighted snippet; `before_id` pages on, after that article."""
        if limit <= 0:
            return []
        from watcher.core.search import parse_search, to_fts5  # on a search only

        match = to_fts5(parse_search(query))
        where, params = "", []
        if since is not None:
            where += " AND a.fetched_at >= ?"
            params.append(ts(since))
        if feed:
            where += " AND a.feed = ?"
            params.append(feed)
        try:
            with self._lock:
                cursor = None if before_id is None else self.db.execute(
                    f"SELECT {_NEWEST}, a.id FROM articles a WHERE a.id = ?",
                    [before_id]).fetchone()
                if before_id is not None and cursor is None:
                    return []  # that article is gone: nothing to page on from
                rows = self._newest_matches(match, where, params, limit, cursor)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"search: cannot run query {query!r}: {exc}") from None
        return [SearchHit(id=r["id"], feed=r["feed"], title=r["title"], url=r["url"],
                          published_at=from_ts(r["published_at"]),
                          fetched_at=must_ts(r["fetched_at"]), snippet=r["snippet"])
                for r in rows]

    def _newest_matches(self, match: str, where: str, params: list[Any], limit: int,
                        cursor: tuple[str, int] | None) -> list[Row]:
        """Sorting every match is what a broad query costs (nearly the whole archive);
        for one, the newest articles are searched first, a window at a time (FTS5 reads
        only the window's rowid range), and the first window that holds `limit` matches
        holds the answer. A narrow query sorts its few matches."""
        older, after = "", []
        if cursor is not None:
            older, after = f" AND ({_NEWEST}, a.id) < (?, ?)", list(cursor)
        sql = ("SELECT a.id, a.feed, a.title, a.url, a.published_at, a.fetched_at, "
               "snippet(articles_fts, -1, '[', ']', '…', 16) AS snippet "
               "FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid "
               "WHERE articles_fts MATCH ?" + where + older)
        params = [match, *params, *after]
        order = f" ORDER BY {_NEWEST} DESC, a.id DESC LIMIT ?"
        window = limit * _WINDOW_PER_HIT
        db = self.db
        broad = db.execute("SELECT count(*) FROM (SELECT rowid FROM articles_fts WHERE "
                           "articles_fts MATCH ? LIMIT ?)", [match, _BROAD]).fetchone()[0]
        newest = (f"SELECT a.id, {_NEWEST} AS k FROM articles a INDEXED BY articles_newest "
                  f"WHERE 1 = 1{older} ORDER BY {_NEWEST} DESC, a.id DESC LIMIT ?")
        while broad >= _BROAD:
            edge = db.execute(newest + " OFFSET ?", [*after, 1, window - 1]).fetchone()
            if edge is None:
                break  # the window is the rest of the archive
            low, high = db.execute(f"SELECT min(id), max(id) FROM ({newest})",
                                   [*after, window]).fetchone()
            rows = _dicts(db, sql + f" AND articles_fts.rowid BETWEEN ? AND ? "
                          f"AND ({_NEWEST}, a.id) >= (?, ?)" + order,
                          [*params, low, high, edge[1], edge[0], limit])
            if len(rows) >= limit:
                return rows
            window *= 8
        return _dicts(db, sql + order, [*params, limit])

    def article_record(self, article_id: int) -> ArticleRecord | None:
        """An article with its matches, its story's deliveries and every copy."""
        rows = self._rows("SELECT * FROM articles WHERE id = ?", [article_id])
        if not rows:
            return None
        article = _article(rows[0])
        story = article.story_id or article_id
        matches = tuple(MatchRecord(r["rule"], r["query"], r["field"], r["snippet"],
                                    must_ts(r["created_at"])) for r in self._rows(
            "SELECT rule, query, field, snippet, created_at FROM matches WHERE article_id = ? "
            "ORDER BY id", [article_id]))
        deliveries = sorted(self.deliveries(story_id=story), key=lambda d: (d.rule, d.channel))
        return ArticleRecord(article=article, matched_at=from_ts(rows[0]["matched_at"]),
                             matches=matches, deliveries=tuple(deliveries),
                             sources=tuple(self.story_sources([story])[story]))

    def status_report(self, now: datetime, since: datetime) -> StatusReport:
        """The numbers behind `watcher status` (since = start of today)."""
        f = self._rows("SELECT count(*) AS total, "
                       "sum(consecutive_failures = 0 AND gone_at IS NULL) AS healthy, "
                       "sum(consecutive_failures > 0 AND gone_at IS NULL) AS failing, "
                       "sum(unhealthy_since IS NOT NULL) AS unhealthy, "
                       "sum(gone_at IS NOT NULL) AS gone FROM feeds")[0]
        backlog = self._rows("SELECT count(*) AS n, min(created_at) AS oldest FROM deliveries "
                             "WHERE status IN ('pending', 'retrying')")[0]
        return StatusReport(
            feeds=FeedCounts(*(int(f[k] or 0) for k in
                               ("total", "healthy", "failing", "unhealthy", "gone"))),
            articles_today=self.count_articles_since(since),
            articles_total=int(self._value("SELECT count(*) FROM articles")),
            matches_today=int(self._value("SELECT count(*) FROM matches WHERE created_at >= ?",
                                          [ts(since)])),
            deliveries={r["status"]: r["n"] for r in self._rows(
                "SELECT status, count(*) AS n FROM deliveries GROUP BY status")},
            backlog=backlog["n"], backlog_oldest=from_ts(backlog["oldest"]),
            feed_errors=tuple(ProblemRecord(r["name"], r["last_error"],
                                            from_ts(r["last_error_at"])) for r in self._rows(
                "SELECT name, last_error, last_error_at FROM feeds WHERE last_error IS NOT NULL "
                "AND (consecutive_failures > 0 OR gone_at IS NOT NULL) "
                "ORDER BY last_error_at DESC LIMIT 5")),
            delivery_errors=tuple(ProblemRecord(r["id"], r["last_error"],
                                                from_ts(r["last_attempt_at"])) for r in self._rows(
                "SELECT id, last_error, last_attempt_at FROM deliveries "
                "WHERE last_error IS NOT NULL AND status != 'sent' "
                "ORDER BY last_attempt_at DESC LIMIT 5")))

    # -- retention -----------------------------------------------------------------------

    def count_prunable(self, now: datetime, retention: Retention) -> int:
        return int(self._value(f"SELECT count(*) {_PRUNABLE}", _cutoffs(now, retention)))

    def prune_batch(self, now: datetime, retention: Retention, batch: int = 500) -> int:
        """Remove up to `batch` articles past retention, in one transaction; 0 when
        none is left. Each removed entry is remembered, so a feed's old items are
        never new again."""
        with self._atomic():
            rows = self._rows(f"SELECT a.id, a.feed, a.entry_id {_PRUNABLE} LIMIT ?",
                              [*_cutoffs(now, retention), batch])
            if not rows:
                return 0
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO pruned_entries (feed, entry_id, pruned_at) "
                "SELECT feed, entry_id, ? FROM article_sources WHERE article_id = ?",
                [(ts(now), r["id"]) for r in rows])
            self.db.conn.executemany(
                "INSERT OR IGNORE INTO pruned_entries (feed, entry_id, pruned_at) "
                "VALUES (?, ?, ?)", [(r["feed"], r["entry_id"], ts(now)) for r in rows])
            self.db.conn.executemany("DELETE FROM articles WHERE id = ?",
                                     [(r["id"],) for r in rows])
        return len(rows)

    def finish_prune(self, now: datetime, retention: Retention) -> None:
        """Forget old tombstones and compact the full-text index after a prune."""
        # Tombstones outlive the articles by the longer period, then go too.
        with self._atomic():
            self._exec("DELETE FROM pruned_entries WHERE pruned_at < ?",
                       [ts(now - timedelta(days=2 * retention.keep_matched_days))])
        # The index rewritten without the removed rows, as 'optimize' does, but in
        # steps of a few hundred pages: 'optimize' writes the whole index in one
        # transaction, and the daemon's polls would wait for it (FTS5: a negative
        # 'merge' until it changes nothing is the same as 'optimize').
        while True:
            with self._lock, self._errors():
                before = self.db.conn.total_changes
                self._exec("INSERT INTO articles_fts(articles_fts, rank) VALUES ('merge', -500)")
                self.db.conn.commit()
                if self.db.conn.total_changes - before < 2:
                    break
