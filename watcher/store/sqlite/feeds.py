"""Feeds: configured rows, poll state, validators, failures and health."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from watcher.core.intents import FeedFailed, FeedFetched, FeedGone, PollResult
from watcher.core.models import Feed, FeedState
from watcher.core.records import FeedHealth
from watcher.store.sqlite.base import Row, SqliteBase, from_ts, ts


class FeedsStore(SqliteBase):
    def sync_feeds(self, feeds: Iterable[Feed]) -> None:
        """Make sure every configured feed has a row; a changed URL in config wins."""
        with self._atomic():
            for f in feeds:
                configured = self._value("SELECT configured_url FROM feeds WHERE name = ?",
                                         [f.name])
                if configured is None:
                    self._exec("INSERT INTO feeds (name, url, configured_url) VALUES (?, ?, ?)",
                               [f.name, f.url, f.url])
                elif configured != f.url:
                    self._exec(
                        "UPDATE feeds SET url = ?, configured_url = ?, etag = NULL, "
                        "last_modified = NULL, next_poll_at = NULL, gone_at = NULL, "
                        "consecutive_failures = 0, failing_since = NULL, "
                        "unhealthy_since = NULL, memo = NULL WHERE name = ?",
                        [f.url, f.url, f.name])

    def feed_state(self, name: str) -> FeedState | None:
        rows = self._rows("SELECT * FROM feeds WHERE name = ?", [name])
        if not rows:
            return None
        r = rows[0]
        return FeedState(name=r["name"], url=r["url"], etag=r["etag"],
                         last_modified=r["last_modified"],
                         next_poll_at=from_ts(r["next_poll_at"]),
                         consecutive_failures=r["consecutive_failures"],
                         last_error=r["last_error"], memo=r["memo"],
                         paused=r["paused_at"] is not None)

    def due_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        """Configured feeds whose next poll time has come (or that never ran)."""
        wanted = set(names)
        rows = self._rows(
            "SELECT name FROM feeds WHERE (next_poll_at IS NULL OR next_poll_at <= ?) "
            "AND gone_at IS NULL AND paused_at IS NULL ORDER BY next_poll_at", [ts(now)])
        return [r["name"] for r in rows if r["name"] in wanted]

    def pollable_feeds(self, now: datetime, names: Iterable[str]) -> list[str]:
        """Feeds that may be polled now on demand: not gone, not held by Retry-After."""
        blocked = {r["name"] for r in self._rows(
            "SELECT name FROM feeds WHERE gone_at IS NOT NULL OR hold_until > ? "
            "OR paused_at IS NOT NULL", [ts(now)])}
        return [n for n in names if n not in blocked]

    def claim_feeds(self, owner: str, now: datetime, lease_s: float, names: Iterable[str],
                    due_only: bool = True, limit: int | None = None) -> list[str]:
        """Take the feeds to poll for `lease_s`: due ones (or, not `due_only`, any not
        gone or held by Retry-After), unless another owner's lease still runs; at most
        `limit`, never polled first, then the longest due."""
        wanted = list(dict.fromkeys(names))
        if not wanted or limit == 0:
            return []
        due = ("(next_poll_at IS NULL OR next_poll_at <= :now) AND gone_at IS NULL"
               if due_only else "gone_at IS NULL AND (hold_until IS NULL OR hold_until <= :now)"
               ) + " AND paused_at IS NULL"
        free: list[tuple[str, str]] = []
        with self._write():
            for i in range(0, len(wanted), 400):
                params: dict[str, object] = {f"n{j}": n
                                             for j, n in enumerate(wanted[i:i + 400])}
                in_list = ",".join(":" + k for k in params)
                params.update(now=ts(now), owner=owner)
                free += [(r["next_poll_at"] or "", r["name"]) for r in self._rows(
                    f"SELECT name, next_poll_at FROM feeds WHERE {due} AND (lease_until IS "
                    "NULL OR lease_until <= :now OR lease_owner = :owner) "
                    f"AND name IN ({in_list})", params)]
            picked = [name for _, name in sorted(free)[:limit]]
            until = ts(now + timedelta(seconds=lease_s))
            self.db.conn.executemany(
                "UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE name = ?",
                [(owner, until, name) for name in picked])
        return picked

    def renew_feed_leases(self, owner: str, names: Iterable[str], now: datetime,
                          lease_s: float) -> None:
        with self._write():
            self.db.conn.executemany(
                "UPDATE feeds SET lease_until = ? WHERE name = ? AND lease_owner = ?",
                [(ts(now + timedelta(seconds=lease_s)), n, owner) for n in names])

    def feed_lease_owners(self, now: datetime) -> list[str]:
        """Who holds live feed leases (to find those of processes that died)."""
        return [r["lease_owner"] for r in self._rows(
            "SELECT DISTINCT lease_owner FROM feeds WHERE lease_until > ? "
            "AND lease_owner IS NOT NULL", [ts(now)])]

    def release_feed_leases_of(self, owner: str) -> int:
        """Give back every feed lease of an owner that is known to be gone."""
        with self._write():
            return self._exec("UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                              "WHERE lease_owner = ?", [owner]).rowcount

    def release_feeds(self, owner: str, names: Iterable[str]) -> None:
        with self._write():
            self.db.conn.executemany(
                "UPDATE feeds SET lease_owner = NULL, lease_until = NULL "
                "WHERE name = ? AND lease_owner = ?", [(n, owner) for n in names])

    def record_poll(self, result: PollResult) -> None:
        """What a poll of one feed came to: fetched, failed, or gone; its lease ends."""
        with self._atomic():
            self._exec("UPDATE feeds SET lease_owner = NULL, lease_until = NULL WHERE name = ?",
                       [result.name])
            if isinstance(result, FeedFetched):
                self._exec(
                    "UPDATE feeds SET etag = ?, last_modified = ?, next_poll_at = ?, "
                    "last_polled_at = ?, last_success_at = ?, consecutive_failures = 0, "
                    "failing_since = NULL, unhealthy_since = NULL, hold_until = NULL, "
                    "url = COALESCE(?, url), title = COALESCE(?, title), memo = COALESCE(?, memo) "
                    "WHERE name = ?",
                    [result.etag, result.last_modified, ts(result.next_poll_at),
                     ts(result.at), ts(result.at), result.url, result.title, result.memo,
                     result.name])
            elif isinstance(result, FeedFailed):
                self._exec(
                    "UPDATE feeds SET next_poll_at = ?, last_polled_at = ?, last_error = ?, "
                    "last_error_at = ?, consecutive_failures = consecutive_failures + 1, "
                    "failing_since = COALESCE(failing_since, ?), hold_until = ? "
                    "WHERE name = ?",
                    [ts(result.next_poll_at), ts(result.at), result.error, ts(result.at),
                     ts(result.at), ts(result.next_poll_at) if result.hold else None,
                     result.name])
            elif isinstance(result, FeedGone):
                self._exec(
                    "UPDATE feeds SET gone_at = ?, last_polled_at = ?, last_error = ?, "
                    "last_error_at = ?, next_poll_at = NULL WHERE name = ?",
                    [ts(result.at), ts(result.at), result.error, ts(result.at), result.name])

    def flag_unhealthy(self, name: str, now: datetime, failing_for_s: float) -> bool:
        """Flag a feed failing for longer than `failing_for_s`; True only the first time."""
        cutoff = ts(now - timedelta(seconds=failing_for_s))
        with self._atomic():
            cur = self._exec(
                "UPDATE feeds SET unhealthy_since = ? WHERE name = ? AND unhealthy_since IS NULL "
                "AND failing_since IS NOT NULL AND failing_since <= ?", [ts(now), name, cutoff])
        return bool(cur.rowcount)

    def feed_health(self, now: datetime) -> list[FeedHealth]:
        """Every feed's state for `watcher feeds`, with items seen in the last 7 days."""
        week = ts(now - timedelta(days=7))
        return [_health(r) for r in self._rows(
            "SELECT f.name, f.url, f.title, f.last_success_at, f.last_error, f.last_error_at, "
            "f.next_poll_at, f.consecutive_failures, f.failing_since, f.unhealthy_since, "
            "f.gone_at, f.paused_at, "
            "f.etag IS NOT NULL OR f.last_modified IS NOT NULL AS conditional, "
            "(SELECT count(*) FROM articles a WHERE a.feed = f.name AND a.fetched_at >= ?) "
            "AS items_7d FROM feeds f ORDER BY f.name", [week])]

    def pause_feed(self, name: str, paused: bool, now: datetime) -> bool:
        """Paused: no daemon claims it. Resumed: due at once."""
        with self._write():
            if paused:
                return bool(self._exec("UPDATE feeds SET paused_at = COALESCE(paused_at, ?) "
                                       "WHERE name = ?", [ts(now), name]).rowcount)
            return bool(self._exec(
                "UPDATE feeds SET next_poll_at = CASE WHEN paused_at IS NULL THEN "
                "next_poll_at END, paused_at = NULL WHERE name = ?", [name]).rowcount)

    def items_per_day(self, since: datetime) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self._rows("SELECT feed, substr(fetched_at, 1, 10) AS day, count(*) AS n "
                            "FROM articles WHERE fetched_at >= ? GROUP BY feed, day",
                            [ts(since)]):
            out.setdefault(r["feed"], {})[r["day"]] = int(r["n"])
        return out


def _health(r: Row) -> FeedHealth:
    return FeedHealth(
        name=r["name"], url=r["url"], title=r["title"],
        last_success_at=from_ts(r["last_success_at"]), last_error=r["last_error"],
        last_error_at=from_ts(r["last_error_at"]), next_poll_at=from_ts(r["next_poll_at"]),
        consecutive_failures=r["consecutive_failures"],
        failing_since=from_ts(r["failing_since"]),
        unhealthy_since=from_ts(r["unhealthy_since"]), gone_at=from_ts(r["gone_at"]),
        conditional=bool(r["conditional"]), items_7d=r["items_7d"],
        paused_at=from_ts(r["paused_at"]))
