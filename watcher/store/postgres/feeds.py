"""Feeds on PostgreSQL: claimed with a lease (FOR UPDATE SKIP LOCKED), so that of
several daemons exactly one polls a feed at each of its due times."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from watcher.core.intents import FeedFailed, FeedFetched, FeedGone, PollResult
from watcher.core.models import Feed, FeedState
from watcher.core.records import FeedHealth
from watcher.store.postgres.base import PgBase


class FeedsPg(PgBase):
    def sync_feeds(self, feeds: Iterable[Feed]) -> None:
        with self._tx():
            for f in feeds:
                self._exec(
                    "INSERT INTO feeds (name, url, configured_url) VALUES (%s, %s, %s) "
                    "ON CONFLICT (name) DO UPDATE SET url = excluded.url, "
                    "configured_url = excluded.configured_url, etag = NULL, "
                    "last_modified = NULL, next_poll_at = NULL, gone_at = NULL, "
                    "consecutive_failures = 0, failing_since = NULL, unhealthy_since = NULL, "
                    "memo = NULL "
                    "WHERE feeds.configured_url IS DISTINCT FROM excluded.configured_url",
                    [f.name, f.url, f.url])

    def feed_state(self, name: str) -> FeedState | None:
        rows = self._rows("SELECT * FROM feeds WHERE name = %s", [name])
        if not rows:
            return None
        r = rows[0]
        return FeedState(name=r["name"], url=r["url"], etag=r["etag"],
                         last_modified=r["last_modified"], next_poll_at=r["next_poll_at"],
                         consecutive_failures=r["consecutive_failures"],
                         last_error=r["last_error"], memo=r["memo"],
                         paused=r["paused_at"] is not None)

    def due_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        return [r["name"] for r in self._rows(
            "SELECT name FROM feeds WHERE (next_poll_at IS NULL OR next_poll_at <= %s) "
            "AND gone_at IS NULL AND paused_at IS NULL AND name = ANY(%s) "
            "ORDER BY next_poll_at NULLS FIRST, name",
            [now, list(names)])]

    def pollable_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        wanted = list(names)
        blocked = {r["name"] for r in self._rows(
            "SELECT name FROM feeds WHERE gone_at IS NOT NULL OR hold_until > %s "
            "OR paused_at IS NOT NULL", [now])}
        return [n for n in wanted if n not in blocked]

    def claim_feeds(self, owner: str, now: datetime, lease_s: float, names: Iterable[str],
                    due_only: bool = True, limit: int | None = None) -> list[str]:
        """Take feeds for `lease_s`: rows another daemon is claiming right now are
        skipped, not waited for, and a lease still running is left to its owner."""
        due = ("(next_poll_at IS NULL OR next_poll_at <= %(now)s) AND gone_at IS NULL"
               if due_only else
               "gone_at IS NULL AND (hold_until IS NULL OR hold_until <= %(now)s)"
               ) + " AND paused_at IS NULL"
        rows = self._rows(
            "WITH picked AS (SELECT name FROM feeds WHERE " + due + " AND name = ANY(%(names)s) "
            "AND (lease_until IS NULL OR lease_until <= %(now)s OR lease_owner = %(owner)s) "
            "ORDER BY next_poll_at NULLS FIRST, name LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
            "UPDATE feeds f SET lease_owner = %(owner)s, lease_until = %(until)s FROM picked "
            "WHERE f.name = picked.name RETURNING f.name, f.next_poll_at",
            {"now": now, "names": list(names), "owner": owner, "limit": limit,
             "until": now + timedelta(seconds=lease_s)})
        never = datetime.min.replace(tzinfo=now.tzinfo)  # never polled: first
        rows.sort(key=lambda r: (r["next_poll_at"] or never, r["name"]))
        return [r["name"] for r in rows]

    def renew_feed_leases(self, owner: str, names: Iterable[str], now: datetime,
                          lease_s: float) -> None:
        self._exec("UPDATE feeds SET lease_until = %s WHERE name = ANY(%s) AND lease_owner = %s",
                   [now + timedelta(seconds=lease_s), list(names), owner])

    def feed_lease_owners(self, now: datetime) -> list[str]:
        return [r["lease_owner"] for r in self._rows(
            "SELECT DISTINCT lease_owner FROM feeds WHERE lease_until > %s "
            "AND lease_owner IS NOT NULL", [now])]

    def release_feed_leases_of(self, owner: str) -> int:
        return self._exec("UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                          "WHERE lease_owner = %s", [owner])

    def release_feeds(self, owner: str, names: Iterable[str]) -> None:
        self._exec("UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                   "WHERE name = ANY(%s) AND lease_owner = %s", [list(names), owner])

    def record_poll(self, result: PollResult) -> None:
        with self._tx():
            if isinstance(result, FeedFetched):
                self._exec(
                    "UPDATE feeds SET etag = %s, last_modified = %s, next_poll_at = %s, "
                    "last_polled_at = %s, last_success_at = %s, consecutive_failures = 0, "
                    "failing_since = NULL, unhealthy_since = NULL, hold_until = NULL, "
                    "url = COALESCE(%s, url), title = COALESCE(%s, title), "
                    "memo = COALESCE(%s, memo), lease_owner = NULL, lease_until = NULL "
                    "WHERE name = %s",
                    [result.etag, result.last_modified, result.next_poll_at, result.at,
                     result.at, result.url, result.title, result.memo, result.name])
            elif isinstance(result, FeedFailed):
                self._exec(
                    "UPDATE feeds SET next_poll_at = %s, last_polled_at = %s, last_error = %s, "
                    "last_error_at = %s, consecutive_failures = consecutive_failures + 1, "
                    "failing_since = COALESCE(failing_since, %s), hold_until = %s, "
                    "lease_owner = NULL, lease_until = NULL WHERE name = %s",
                    [result.next_poll_at, result.at, result.error, result.at, result.at,
                     result.next_poll_at if result.hold else None, result.name])
            elif isinstance(result, FeedGone):
                self._exec(
                    "UPDATE feeds SET gone_at = %s, last_polled_at = %s, last_error = %s, "
                    "last_error_at = %s, next_poll_at = NULL, lease_owner = NULL, "
                    "lease_until = NULL WHERE name = %s",
                    [result.at, result.at, result.error, result.at, result.name])

    def flag_unhealthy(self, name: str, now: datetime, failing_for_s: float) -> bool:
        return bool(self._exec(
            "UPDATE feeds SET unhealthy_since = %s WHERE name = %s AND unhealthy_since IS NULL "
            "AND failing_since IS NOT NULL AND failing_since <= %s",
            [now, name, now - timedelta(seconds=failing_for_s)]))

    def feed_health(self, now: datetime) -> list[FeedHealth]:
        return [FeedHealth(**r) for r in self._rows(
            "SELECT f.name, f.url, f.title, f.last_success_at, f.last_error, f.last_error_at, "
            "f.next_poll_at, f.consecutive_failures, f.failing_since, f.unhealthy_since, "
            "f.gone_at, f.paused_at, "
            "(f.etag IS NOT NULL OR f.last_modified IS NOT NULL) AS conditional, "
            "(SELECT count(*) FROM articles a WHERE a.feed = f.name AND a.fetched_at >= %s) "
            "AS items_7d FROM feeds f ORDER BY f.name", [now - timedelta(days=7)])]

    def pause_feed(self, name: str, paused: bool, now: datetime) -> bool:
        if paused:
            return bool(self._exec("UPDATE feeds SET paused_at = COALESCE(paused_at, %s) "
                                   "WHERE name = %s", [now, name]))
        return bool(self._exec(
            "UPDATE feeds SET next_poll_at = CASE WHEN paused_at IS NULL THEN next_poll_at "
            "END, paused_at = NULL WHERE name = %s", [name]))

    def items_per_day(self, since: datetime) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self._rows("SELECT feed, to_char(fetched_at AT TIME ZONE 'UTC', "
                            "'YYYY-MM-DD') AS day, count(*) AS n FROM articles "
                            "WHERE fetched_at >= %s GROUP BY 1, 2", [since]):
            out.setdefault(r["feed"], {})[r["day"]] = int(r["n"])
        return out
