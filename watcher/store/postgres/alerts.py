"""Alerts as people review them, and the stored articles a draft rule may match, on
PostgreSQL (the same reads as watcher.store.sqlite.alerts)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from watcher.core.digest import dropped_why
from watcher.core.models import Article
from watcher.core.records import AlertRecord, DeliveryRecord
from watcher.store.postgres.articles import ArticlesPg, _article

_ALERT = ("SELECT m.id, m.rule, m.query, m.field, m.snippet, m.created_at, m.article_id, "
          "a.story_id, a.title, a.url, a.feed, a.published_at, "
          "f.match_id IS NOT NULL AS not_relevant, m.hits "
          "FROM matches m JOIN articles a ON a.id = m.article_id "
          "LEFT JOIN alert_feedback f ON f.match_id = m.id AND f.verdict = 'not_relevant'")


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _alert(r: dict[str, Any]) -> AlertRecord:
    hits = r.pop("hits")
    return AlertRecord(**r, matched=tuple(h["matched"] for h in hits))


class AlertsPg(ArticlesPg):
    def alerts(self, rule: str | None = None, feed: str | None = None,
               since: datetime | None = None, until: datetime | None = None,
               text: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[AlertRecord]:
        sql = _ALERT + " WHERE true"
        params: list[Any] = []
        for cond, value in (("m.rule = %s", rule), ("a.feed = %s", feed),
                            ("m.created_at >= %s", since), ("m.created_at < %s", until),
                            ("m.id < %s", before_id)):
            if value is not None and value != "":
                sql += f" AND {cond}"
                params.append(value)
        if text:
            sql += " AND (a.title ILIKE %s OR m.snippet ILIKE %s)"
            params += [_like(text), _like(text)]
        sql += " ORDER BY m.id DESC LIMIT %s"
        params.append(limit)
        return [_alert(r) for r in self._rows(sql, params)]

    def alert(self, alert_id: int) -> AlertRecord | None:
        rows = self._rows(_ALERT + " WHERE m.id = %s", [alert_id])
        return _alert(rows[0]) if rows else None

    def story_deliveries(self, story_ids: Iterable[int]) -> dict[int, list[DeliveryRecord]]:
        ids = list(dict.fromkeys(story_ids))
        out: dict[int, list[DeliveryRecord]] = {i: [] for i in ids}
        for r in self._rows(
                "SELECT id, rule, channel, status, attempts, created_at, next_attempt_at, "
                "last_error, sent_at, article_id, held_until, digest_id, last_attempt_at, "
                "alert->>'title' AS title, story_id FROM deliveries "
                "WHERE story_id = ANY(%s) ORDER BY rule, channel, id", [ids]):
            out[r.pop("story_id")].append(DeliveryRecord(**r))
        return out

    def record_feedback(self, alert_id: int, verdict: str, now: datetime) -> bool:
        return self._exec(
            "INSERT INTO alert_feedback (match_id, rule, verdict, created_at) "
            "SELECT id, rule, %s, %s FROM matches WHERE id = %s ON CONFLICT (match_id) "
            "DO UPDATE SET verdict = excluded.verdict, created_at = excluded.created_at",
            [verdict, now, alert_id]) > 0

    def feedback_counts(self, verdict: str = "not_relevant") -> dict[str, int]:
        return {r["rule"]: int(r["n"]) for r in self._rows(
            "SELECT rule, count(*) AS n FROM alert_feedback WHERE verdict = %s GROUP BY rule",
            [verdict])}

    def alert_counts(self, since: datetime) -> dict[str, int]:
        return {r["rule"]: int(r["n"]) for r in self._rows(
            "SELECT rule, count(*) AS n FROM matches WHERE created_at >= %s GROUP BY rule",
            [since])}

    def alerts_per_day(self, since: datetime) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self._rows("SELECT rule, to_char(created_at AT TIME ZONE 'UTC', "
                            "'YYYY-MM-DD') AS day, count(*) AS n FROM matches "
                            "WHERE created_at >= %s GROUP BY 1, 2", [since]):
            out.setdefault(r["rule"], {})[r["day"]] = int(r["n"])
        return out

    def mute_rule(self, rule: str, until: datetime | None, now: datetime,
                  drop: bool = False) -> None:
        with self._tx():
            held = self._value("SELECT muted_until FROM rule_mutes WHERE rule = %s "
                               "AND muted_until > %s", [rule, now])
            if drop and held is not None:  # what the mute holds already is dropped too
                self._exec("UPDATE deliveries SET status = 'dropped', last_error = %s "
                           "WHERE rule = %s AND status = 'pending' AND held_until = %s "
                           "AND (claimed_until IS NULL OR claimed_until <= %s)",
                           [dropped_why(held), rule, held, now])
            self._set_mute(rule, until, now, drop)

    def _set_mute(self, rule: str, until: datetime | None, now: datetime,
                  drop: bool) -> None:
        if until is None:
            self._exec("DELETE FROM rule_mutes WHERE rule = %s", [rule])
        else:
            self._exec("INSERT INTO rule_mutes (rule, muted_until, created_at, drop_held) "
                       "VALUES (%s, %s, %s, %s) ON CONFLICT (rule) DO UPDATE SET muted_until = "
                       "excluded.muted_until, created_at = excluded.created_at, "
                       "drop_held = excluded.drop_held", [rule, until, now, drop])

    def dropping_mutes(self, now: datetime) -> set[str]:
        return {r["rule"] for r in self._rows(
            "SELECT rule FROM rule_mutes WHERE muted_until > %s AND drop_held", [now])}

    def mutes(self, now: datetime) -> dict[str, datetime]:
        return {r["rule"]: r["muted_until"] for r in self._rows(
            "SELECT rule, muted_until FROM rule_mutes WHERE muted_until > %s", [now])}

    def search_articles(self, query: str, since: datetime, limit: int = 10000
                        ) -> list[Article]:
        from watcher.core.search import parse_search, to_tsquery  # on a search only

        tsq = to_tsquery(parse_search(query))
        return [_article(r) for r in self._rows(
            "SELECT a.* FROM articles a WHERE a.search @@ to_tsquery('english', %s) "
            "AND a.fetched_at >= %s ORDER BY a.id DESC LIMIT %s", [tsq, since, limit])]
