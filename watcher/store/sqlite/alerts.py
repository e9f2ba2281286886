"""Alerts as people review them: the matches, newest first, with their article and the
verdicts given on them; and the stored articles a draft rule may match."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from watcher.core.digest import dropped_why
from watcher.core.models import Article
from watcher.core.records import AlertRecord, DeliveryRecord
from watcher.store.sqlite.articles import ArticlesStore, _article
from watcher.store.sqlite.base import Row, from_ts, marks, must_ts, ts
from watcher.store.sqlite.outbox import delivery_record

_ALERT = ("SELECT m.id, m.rule, m.query, m.field, m.snippet, m.created_at, m.article_id, "
          "a.story_id, a.title, a.url, a.feed, a.published_at, "
          "f.match_id IS NOT NULL AS not_relevant, m.hits "
          "FROM matches m JOIN articles a ON a.id = m.article_id "
          "LEFT JOIN alert_feedback f ON f.match_id = m.id AND f.verdict = 'not_relevant'")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _alert(r: Row) -> AlertRecord:
    return AlertRecord(id=r["id"], rule=r["rule"], query=r["query"], field=r["field"],
                       snippet=r["snippet"], created_at=must_ts(r["created_at"]),
                       article_id=r["article_id"], story_id=r["story_id"], title=r["title"],
                       url=r["url"], feed=r["feed"], published_at=from_ts(r["published_at"]),
                       not_relevant=bool(r["not_relevant"]),
                       matched=tuple(h["matched"] for h in json.loads(r["hits"])))


class AlertsStore(ArticlesStore):
    def alerts(self, rule: str | None = None, feed: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               text: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[AlertRecord]:
        """Matches newest first; `text` is looked for in the title and the snippet;
        `before_id` pages on (the ids only grow)."""
        sql = _ALERT + " WHERE 1 = 1"
        params: list[Any] = []
        for cond, value in (("m.rule = ?", rule), ("a.feed = ?", feed),
                            ("m.created_at >= ?", ts(since)), ("m.created_at < ?", ts(until)),
                            ("m.id < ?", before_id)):
            if value is not None and value != "":
                sql += f" AND {cond}"
                params.append(value)
        if text:
            sql += " AND (a.title LIKE ? ESCAPE '\\' OR m.snippet LIKE ? ESCAPE '\\')"
            params += [_like(text), _like(text)]
        sql += " ORDER BY m.id DESC LIMIT ?"
        params.append(limit)
        return [_alert(r) for r in self._rows(sql, params)]

    def alert(self, alert_id: int) -> AlertRecord | None:
        rows = self._rows(_ALERT + " WHERE m.id = ?", [alert_id])
        return _alert(rows[0]) if rows else None

    def story_deliveries(self, story_ids: Iterable[int]) -> dict[int, list[DeliveryRecord]]:
        ids = list(dict.fromkeys(story_ids))
        out: dict[int, list[DeliveryRecord]] = {i: [] for i in ids}
        if ids:
            for r in self._rows(
                    "SELECT id, rule, channel, status, attempts, created_at, next_attempt_at, "
                    "last_error, sent_at, article_id, held_until, digest_id, last_attempt_at, "
                    "json_extract(alert, '$.title') AS title, story_id FROM deliveries "
                    f"WHERE story_id IN ({marks(ids)}) ORDER BY rule, channel, id", ids):
                out[r["story_id"]].append(delivery_record(r))
        return out

    def record_feedback(self, alert_id: int, verdict: str, now: datetime) -> bool:
        """Keep a verdict on an alert (one per alert, the last wins); False when there
        is no such alert."""
        with self._atomic():
            rows = self._rows("SELECT rule FROM matches WHERE id = ?", [alert_id])
            if not rows:
                return False
            self._exec("INSERT INTO alert_feedback (match_id, rule, verdict, created_at) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT (match_id) DO UPDATE SET "
                       "verdict = excluded.verdict, created_at = excluded.created_at",
                       [alert_id, rows[0]["rule"], verdict, ts(now)])
        return True

    def feedback_counts(self, verdict: str = "not_relevant") -> dict[str, int]:
        """rule -> how many of its alerts got this verdict."""
        return {r["rule"]: int(r["n"]) for r in self._rows(
            "SELECT rule, count(*) AS n FROM alert_feedback WHERE verdict = ? GROUP BY rule",
            [verdict])}

    def alert_counts(self, since: datetime) -> dict[str, int]:
        """rule -> alerts since then."""
        return {r["rule"]: int(r["n"]) for r in self._rows(
            "SELECT rule, count(*) AS n FROM matches WHERE created_at >= ? GROUP BY rule",
            [ts(since)])}

    def alerts_per_day(self, since: datetime) -> dict[str, dict[str, int]]:
        """rule -> UTC day (YYYY-MM-DD) -> alerts that day, since then."""
        out: dict[str, dict[str, int]] = {}
        for r in self._rows("SELECT rule, substr(created_at, 1, 10) AS day, count(*) AS n "
                            "FROM matches WHERE created_at >= ? GROUP BY rule, day",
                            [ts(since)]):
            out.setdefault(r["rule"], {})[r["day"]] = int(r["n"])
        return out

    def mute_rule(self, rule: str, until: datetime | None, now: datetime,
                  drop: bool = False) -> None:
        """Hold the rule's deliveries until then (None: no longer); `drop`: drop them,
        and those its mute holds already."""
        with self._atomic():
            held = self._value("SELECT muted_until FROM rule_mutes WHERE rule = ? "
                               "AND muted_until > ?", [rule, ts(now)])
            if drop and held is not None:
                self._exec("UPDATE deliveries SET status = 'dropped', last_error = ? "
                           "WHERE rule = ? AND status = 'pending' AND held_until = ? "
                           "AND (claimed_until IS NULL OR claimed_until <= ?)",
                           [dropped_why(must_ts(held)), rule, held, ts(now)])
            if until is None:
                self._exec("DELETE FROM rule_mutes WHERE rule = ?", [rule])
            else:
                self._exec("INSERT INTO rule_mutes (rule, muted_until, created_at, drop_held) "
                           "VALUES (?, ?, ?, ?) ON CONFLICT (rule) DO UPDATE SET "
                           "muted_until = excluded.muted_until, "
                           "created_at = excluded.created_at, drop_held = excluded.drop_held",
                           [rule, ts(until), ts(now), int(drop)])

    def dropping_mutes(self, now: datetime) -> set[str]:
        return {r["rule"] for r in self._rows(
            "SELECT rule FROM rule_mutes WHERE muted_until > ? AND drop_held", [ts(now)])}

    def mutes(self, now: datetime) -> dict[str, datetime]:
        """rule -> until when it is muted, for the mutes not over yet."""
        return {r["rule"]: must_ts(r["muted_until"]) for r in self._rows(
            "SELECT rule, muted_until FROM rule_mutes WHERE muted_until > ?", [ts(now)])}

    def search_articles(self, query: str, since: datetime, limit: int = 10000
                        ) -> list[Article]:
        """The articles fetched since then that the full-text search finds (the archive's
        syntax, watcher.core.search), newest first: the candidates a matcher confirms."""
        from watcher.core.search import parse_search, to_fts5  # on a search only

        fts = to_fts5(parse_search(query))
        rows = self._rows(
            "SELECT a.* FROM articles_fts JOIN articles a ON a.id = articles_fts.rowid "
            "WHERE articles_fts MATCH ? AND a.fetched_at >= ? ORDER BY a.id DESC LIMIT ?",
            [fts, ts(since), limit])
        return [_article(r) for r in rows]
