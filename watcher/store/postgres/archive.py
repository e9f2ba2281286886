"""Search (tsvector, GIN), one article's record, the status report, retention, and
the daemons' registry, on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from watcher.core.errors import StoreError
from watcher.core.intents import Retention
from watcher.core.records import (
    ArticleRecord,
    DaemonInfo,
    FeedCounts,
    MatchRecord,
    ProblemRecord,
    SearchHit,
    StatusReport,
)
from watcher.store.postgres.articles import ArticlesPg, _article
from watcher.store.postgres.outbox import OutboxPg

_PRUNABLE = (
    "FROM articles a WHERE ((a.fetched_at < %(plain)s AND NOT EXISTS (SELECT 1 FROM matches "
    "m WHERE m.article_id = a.id)) OR a.fetched_at < %(matched)s) AND NOT EXISTS (SELECT 1 "
    "FROM deliveries d WHERE d.article_id = a.id AND d.status IN ('pending', 'retrying'))")


def _cutoffs(now: datetime, retention: Retention) -> dict[str, Any]:
    return {"plain": now - timedelta(days=retention.keep_days),
            "matched": now - timedelta(days=retention.keep_matched_days)}


class ArchivePg(ArticlesPg, OutboxPg):
    def search(self, query: str, since: datetime | None = None, feed: str | None = None,
               limit: int = 20, before_id: int | None = None) -> list[SearchHit]:
        """The same syntax as on SQLite; PostgreSQL's English configuration stems words
        (as SQLite's porter tokenizer does) and drops stop words. The order has an index
        (articles_newest): for a broad query the planner walks it newest first and stops
        at the page, for a narrow one it sorts the few matches the GIN index finds."""
        from watcher.core.search import parse_search, to_tsquery  # on a search only

        sql = ("SELECT a.id, a.feed, a.title, a.url, a.published_at, a.fetched_at, "
               "ts_headline('english', a.title || ' ' || a.summary || ' ' || a.body, q, "
               "'StartSel=[, StopSel=], MaxWords=16, MinWords=8, FragmentDelimiter=…, "
               "MaxFragments=1') AS snippet FROM articles a, "
               "to_tsquery('english', %(q)s) q WHERE a.search @@ q")
        params: dict[str, Any] = {"q": to_tsquery(parse_search(query)), "limit": limit}
        if since is not None:
            sql += " AND a.fetched_at >= %(since)s"
            params["since"] = since
        if feed:
            sql += " AND a.feed = %(feed)s"
            params["feed"] = feed
        if before_id is not None:
            # After that article in the order; none when it is gone.
            sql += (" AND (COALESCE(a.published_at, a.fetched_at), a.id) < (SELECT "
                    "COALESCE(b.published_at, b.fetched_at), b.id FROM articles b "
                    "WHERE b.id = %(before)s)")
            params["before"] = before_id
        sql += (" ORDER BY COALESCE(a.published_at, a.fetched_at) DESC, a.id DESC "
                "LIMIT %(limit)s")
        try:
            with self._connection() as conn:
                rows = conn.execute(sql, params).fetchall()
        except psycopg.errors.SyntaxError as exc:
            raise StoreError(f"search: cannot run query {query!r}: {exc}") from None
        return [SearchHit(**r) for r in rows]

    def article_record(self, article_id: int) -> ArticleRecord | None:
        rows = self._rows("SELECT * FROM articles WHERE id = %s", [article_id])
        if not rows:
            return None
        article = _article(rows[0])
        story = article.story_id or article_id
        matches = tuple(MatchRecord(**r) for r in self._rows(
            "SELECT rule, query, field, snippet, created_at FROM matches "
            "WHERE article_id = %s ORDER BY id", [article_id]))
        deliveries = sorted(self.deliveries(story_id=story), key=lambda d: (d.rule, d.channel))
        return ArticleRecord(article=article, matched_at=rows[0]["matched_at"],
                             matches=matches, deliveries=tuple(deliveries),
                             sources=tuple(self.story_sources([story])[story]))

    def status_report(self, now: datetime, since: datetime) -> StatusReport:
        f = self._rows(
            "SELECT count(*) AS total, "
            "count(*) FILTER (WHERE consecutive_failures = 0 AND gone_at IS NULL) AS healthy, "
            "count(*) FILTER (WHERE consecutive_failures > 0 AND gone_at IS NULL) AS failing, "
            "count(*) FILTER (WHERE unhealthy_since IS NOT NULL) AS unhealthy, "
            "count(*) FILTER (WHERE gone_at IS NOT NULL) AS gone FROM feeds")[0]
        backlog = self._rows("SELECT count(*) AS n, min(created_at) AS oldest FROM deliveries "
                             "WHERE status IN ('pending', 'retrying')")[0]
        return StatusReport(
            feeds=FeedCounts(**{k: int(v) for k, v in f.items()}),
            articles_today=self.count_articles_since(since),
            articles_total=int(self._value("SELECT count(*) FROM articles")),
            matches_today=int(self._value("SELECT count(*) FROM matches WHERE created_at >= %s",
                                          [since])),
            deliveries={r["status"]: int(r["n"]) for r in self._rows(
                "SELECT status, count(*) AS n FROM deliveries GROUP BY status")},
            backlog=int(backlog["n"]), backlog_oldest=backlog["oldest"],
            feed_errors=tuple(ProblemRecord(r["name"], r["last_error"], r["last_error_at"])
                              for r in self._rows(
                "SELECT name, last_error, last_error_at FROM feeds WHERE last_error IS NOT NULL "
                "AND (consecutive_failures > 0 OR gone_at IS NOT NULL) "
                "ORDER BY last_error_at DESC LIMIT 5")),
            delivery_errors=tuple(ProblemRecord(r["id"], r["last_error"], r["last_attempt_at"])
                                  for r in self._rows(
                "SELECT id, last_error, last_attempt_at FROM deliveries WHERE last_error IS NOT "
                "NULL AND status != 'sent' ORDER BY last_attempt_at DESC NULLS LAST LIMIT 5")))

    def count_prunable(self, now: datetime, retention: Retention) -> int:
        return int(self._value(f"SELECT count(*) {_PRUNABLE}", _cutoffs(now, retention)))

    def prune_batch(self, now: datetime, retention: Retention, batch: int = 500) -> int:
        with self._tx():
            rows = self._rows(f"SELECT a.id, a.feed, a.entry_id {_PRUNABLE} LIMIT %(batch)s "
                              "FOR UPDATE SKIP LOCKED", {**_cutoffs(now, retention),
                                                         "batch": batch})
            if not rows:
                return 0
            ids = [r["id"] for r in rows]
            self._exec("INSERT INTO pruned_entries (feed, entry_id, pruned_at) SELECT feed, "
                       "entry_id, %s FROM article_sources WHERE article_id = ANY(%s) "
                       "ON CONFLICT DO NOTHING", [now, ids])
            self._many("INSERT INTO pruned_entries (feed, entry_id, pruned_at) VALUES "
                       "(%s, %s, %s) ON CONFLICT DO NOTHING",
                       [(r["feed"], r["entry_id"], now) for r in rows])
            self._exec("DELETE FROM articles WHERE id = ANY(%s)", [ids])
        return len(rows)

    def finish_prune(self, now: datetime, retention: Retention) -> None:
        self._exec("DELETE FROM pruned_entries WHERE pruned_at < %s",
                   [now - timedelta(days=2 * retention.keep_matched_days)])

    # -- the daemons sharing the database ---------------------------------------------

    def register_daemon(self, info: DaemonInfo) -> None:
        self._exec(
            "INSERT INTO daemons (id, host, pid, started_at, heartbeat_at, rules_hash, "
            "config_hash) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at", [info.id, info.host, info.pid,
                                                     info.started_at, info.heartbeat_at,
                                                     info.rules_hash, info.config_hash])

    def heartbeat(self, daemon_id: str, now: datetime, rules_hash: str,
                  config_hash: str) -> None:
        self._exec("UPDATE daemons SET heartbeat_at = %s, rules_hash = %s, config_hash = %s "
                   "WHERE id = %s", [now, rules_hash, config_hash, daemon_id])

    def deregister_daemon(self, daemon_id: str) -> None:
        self._exec("DELETE FROM daemons WHERE id = %s", [daemon_id])

    def live_daemons(self, since: datetime) -> list[DaemonInfo]:
        return [DaemonInfo(**r) for r in self._rows(
            "SELECT id, host, pid, started_at, heartbeat_at, rules_hash, config_hash "
            "FROM daemons WHERE heartbeat_at >= %s ORDER BY started_at", [since])]
