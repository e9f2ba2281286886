"""Matches and the outbox: deliveries written with their match, classified for
digests, claimed with a lease, and marked sent, retrying or dead."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from watcher.core.digest import dropped_why
from watcher.core.intents import HoldCandidate, HoldDecision, Matched
from watcher.core.models import Alert, Delivery
from watcher.core.records import DeliveryRecord
from watcher.store.sqlite.base import Row, SqliteBase, from_ts, marks, must_ts, ts

_CHUNK = 400


class OutboxStore(SqliteBase):
    def record_matches(self, matched: Matched) -> int:
        """Write the matches and their deliveries, and mark the article matched.

        One transaction: either every delivery of every match exists, or none does
        and the article stays unmatched for the next start to finish. A match the
        article already had makes no delivery again. Returns deliveries created.
        """
        created = 0
        now = ts(matched.at)
        with self._atomic():
            for m in matched.matches:
                cur = self._exec(
                    "INSERT INTO matches (article_id, rule, query, field, snippet, hits, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(article_id, rule) DO NOTHING",
                    [matched.article_id, m.rule, m.query, m.field, m.snippet,
                     json.dumps([h.__dict__ for h in m.hits]), now])
                if not cur.rowcount:
                    continue
                match_id = cur.lastrowid
                for d in matched.deliveries:
                    if d.rule != m.rule:
                        continue
                    created += self._exec(
                        "INSERT INTO deliveries (id, match_id, article_id, rule, channel, alert, "
                        "created_at, next_attempt_at, story_id) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        [d.id, match_id, matched.article_id, d.rule, d.channel,
                         json.dumps(d.alert.as_dict()), now, now, matched.story_id]).rowcount
            self._exec("UPDATE articles SET matched_at = ? WHERE id = ?",
                       [now, matched.article_id])
        return created

    # -- holding for digests ---------------------------------------------------------

    def hold_candidates(self) -> tuple[list[HoldCandidate],
                                       dict[tuple[str, str], datetime | None]]:
        """New deliveries not yet classified, oldest first, and for each of their
        (rule, channel) when its last delivery sent at once was created."""
        rows = self._rows(
            "SELECT id, rule, channel, created_at FROM deliveries WHERE classified_at IS NULL "
            "ORDER BY created_at, id")
        candidates = [HoldCandidate(r["id"], r["rule"], r["channel"], must_ts(r["created_at"]))
                      for r in rows]
        keys = {(c.rule, c.channel) for c in candidates}
        return candidates, {k: self._last_immediate(*k) for k in keys}

    def _last_immediate(self, rule: str, channel: str) -> datetime | None:
        return from_ts(self._value(
            "SELECT max(created_at) FROM deliveries WHERE rule = ? AND channel = ? "
            "AND classified_at IS NOT NULL AND held_until IS NULL", [rule, channel]))

    def apply_holds(self, decisions: Sequence[HoldDecision], now: datetime) -> int:
        """Apply the decisions still valid: the delivery is still unclassified and its
        (rule, channel) has not sent anything at once since the decision was made.
        Returns how many were applied; the rest are decided again next time."""
        applied = 0
        with self._write():
            stale = {(d.rule, d.channel) for d in decisions
                     if self._last_immediate(d.rule, d.channel) != d.basis}
            for d in decisions:
                if (d.rule, d.channel) in stale:
                    continue
                if d.release_at is None or d.digest_id is None:
                    applied += self._exec(
                        "UPDATE deliveries SET classified_at = ? WHERE id = ? "
                        "AND classified_at IS NULL", [ts(now), d.id]).rowcount
                    continue
                if d.drop:
                    applied += self._exec(
                        "UPDATE deliveries SET classified_at = ?, held_until = ?, "
                        "status = 'dropped', last_error = ? WHERE id = ? "
                        "AND classified_at IS NULL",
                        [ts(now), ts(d.release_at), dropped_why(d.release_at), d.id]).rowcount
                    continue
                group = d.digest_id
                if self._value(
                        "SELECT 1 FROM deliveries WHERE digest_id = ? AND (status IN "
                        "('sent', 'dead') OR claimed_until > ?) LIMIT 1", [group, ts(now)]):
                    # That digest already left (or is leaving): this one goes on its own.
                    group = f"{group}.{d.id[-8:]}"
                applied += self._exec(
                    "UPDATE deliveries SET classified_at = ?, held_until = ?, digest_id = ?, "
                    "next_attempt_at = ? WHERE id = ? AND classified_at IS NULL",
                    [ts(now), ts(d.release_at), group, ts(d.release_at), d.id]).rowcount
        return applied

    # -- claims ------------------------------------------------------------------------

    def claim_deliveries(self, now: datetime, lease_s: float, limit: int,
                         ignore_schedule: bool = False, owner: str | None = None,
                         tried_before: datetime | None = None) -> list[Delivery]:
        """Take classified, due deliveries for `lease_s` seconds so no other loop sends
        them too. The members of a digest are always claimed together.
        `ignore_schedule` (run --once) takes waiting retries now, but not digests
        before their time; `tried_before` leaves out those tried since then."""
        due = ("AND (next_attempt_at <= :now OR held_until IS NULL OR attempts > 0) "
               if ignore_schedule else "AND next_attempt_at <= :now ")
        if tried_before is not None:
            due += "AND (last_attempt_at IS NULL OR last_attempt_at < :tried) "
        params = {"now": ts(now), "until": ts(now + timedelta(seconds=lease_s)),
                  "limit": limit, "tried": ts(tried_before)}
        with self._write():
            picked = self._rows(
                "SELECT id, digest_id FROM deliveries WHERE status IN ('pending', 'retrying') "
                f"AND classified_at IS NOT NULL {due}"
                "AND (claimed_until IS NULL OR claimed_until <= :now) "
                "ORDER BY next_attempt_at, id LIMIT :limit", params)
            ids = [r["id"] for r in picked]
            rows: list[Row] = []
            for i in range(0, len(ids), _CHUNK):
                chunk = ids[i:i + _CHUNK]
                rows += self._rows(
                    f"UPDATE deliveries SET claimed_until = ?, claimed_by = ? WHERE id IN "
                    f"({marks(chunk)}) RETURNING *", [params["until"], owner, *chunk])
            for g in sorted({r["digest_id"] for r in picked if r["digest_id"]}):
                rows += self._rows(  # the rest of the digest, whatever its own schedule
                    "UPDATE deliveries SET claimed_until = ?, claimed_by = ? WHERE digest_id = ? "
                    "AND status IN ('pending', 'retrying') AND classified_at IS NOT NULL "
                    "AND (claimed_until IS NULL OR claimed_until <= ?) RETURNING *",
                    [params["until"], owner, g, params["now"]])
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        return [_delivery(r) for r in rows]

    def renew_claim(self, ids: Sequence[str], owner: str, now: datetime,
                    lease_s: float) -> bool:
        """Extend our claim on `ids` just before sending them; False if any of them
        is no longer ours (the lease ran out and another loop took it)."""
        until = ts(now + timedelta(seconds=lease_s))
        with self._write():
            n = sum(self._exec(
                "UPDATE deliveries SET claimed_until = ? WHERE id = ? AND claimed_by = ? "
                "AND status IN ('pending', 'retrying')", [until, i, owner]).rowcount
                for i in ids)
        return n == len(ids)

    def claim_owners(self, now: datetime) -> list[str]:
        """Who holds live claims (to find those of processes that died)."""
        return [r["claimed_by"] for r in self._rows(
            "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_until > ? "
            "AND claimed_by IS NOT NULL", [ts(now)])]

    def release_claims_of(self, owner: str) -> int:
        """Give back every claim of an owner that is known to be gone."""
        with self._write():
            return self._exec("UPDATE deliveries SET claimed_until = NULL, claimed_by = NULL "
                              "WHERE claimed_by = ?", [owner]).rowcount

    # -- outcomes ----------------------------------------------------------------------

    def mark_sent(self, ids: Sequence[str], now: datetime) -> None:
        """The channel accepted them (one alert, or the digest that carries them)."""
        with self._write():
            self.db.conn.executemany(
                "UPDATE deliveries SET status = 'sent', sent_at = ?, last_attempt_at = ?, "
                "attempts = attempts + 1, claimed_until = NULL, last_error = NULL WHERE id = ?",
                [[ts(now), ts(now), i] for i in ids])

    def mark_failed(self, ids: Sequence[str], now: datetime, error: str,
                    next_attempt_at: datetime | None) -> None:
        """Record a failed attempt; no next attempt means the deliveries are dead."""
        status = "dead" if next_attempt_at is None else "retrying"
        with self._write():
            self.db.conn.executemany(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, last_error = ?, "
                "last_attempt_at = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                "claimed_until = NULL WHERE id = ?",
                [[status, error, ts(now), ts(next_attempt_at), i] for i in ids])

    def release(self, ids: Sequence[str]) -> None:
        """Give claimed deliveries back untouched (the daemon is stopping)."""
        with self._write():
            self.db.conn.executemany("UPDATE deliveries SET claimed_until = NULL WHERE id = ?",
                                     [[i] for i in ids])

    def requeue_deliveries(self, now: datetime, ids: Sequence[str] = (),
                           all_dead: bool = False) -> list[str]:
        """Put dead or retrying deliveries back in the queue, due now, with a fresh
        retry budget. The other members of a digest come back with them. Returns
        the ids requeued; ids that are unknown or already sent are left alone."""
        with self._write():
            if all_dead:
                rows = self._rows("SELECT id, digest_id FROM deliveries WHERE status = 'dead'")
            else:
                rows = [r for i in ids for r in self._rows(
                    "SELECT id, digest_id FROM deliveries WHERE id = ? "
                    "AND status IN ('dead', 'retrying', 'pending')", [i])]
            wanted = {r["id"] for r in rows}
            for g in {r["digest_id"] for r in rows if r["digest_id"]}:
                wanted |= {r["id"] for r in self._rows(
                    "SELECT id FROM deliveries WHERE digest_id = ? AND status != 'sent'", [g])}
            self.db.conn.executemany(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, "
                "requeued_at = ?, claimed_until = NULL WHERE id = ?",
                [[ts(now), ts(now), i] for i in sorted(wanted)])
        return sorted(wanted)

    def deliveries(self, status: str | None = None, rule: str | None = None,
                   story_id: int | None = None) -> list[DeliveryRecord]:
        """The outbox, oldest first; only one status, rule or story when given."""
        sql = ("SELECT id, rule, channel, status, attempts, created_at, next_attempt_at, "
               "last_error, sent_at, article_id, held_until, digest_id, last_attempt_at, "
               "json_extract(alert, '$.title') AS title FROM deliveries WHERE 1=1")
        params: list[Any] = []
        for column, value in (("status", status), ("rule", rule), ("story_id", story_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        return [delivery_record(r) for r in self._rows(sql + " ORDER BY created_at, id",
                                                       params)]


def delivery_record(r: Row) -> DeliveryRecord:
    return DeliveryRecord(
        id=r["id"], rule=r["rule"], channel=r["channel"], status=r["status"],
        attempts=r["attempts"], created_at=must_ts(r["created_at"]),
        next_attempt_at=must_ts(r["next_attempt_at"]), last_error=r["last_error"],
        sent_at=from_ts(r["sent_at"]), article_id=r["article_id"],
        held_until=from_ts(r["held_until"]), digest_id=r["digest_id"],
        last_attempt_at=from_ts(r["last_attempt_at"]), title=r["title"])


def _delivery(r: Row) -> Delivery:
    a = json.loads(r["alert"])
    alert = Alert(
        delivery_id=a["id"], rule=a["rule"], query=a.get("query", ""), title=a["title"],
        url=a.get("url"), feed=a["feed"], published=a.get("published"),
        field=a["field"], snippet=a["snippet"], matched=tuple(a.get("matched", ())),
        article_id=a.get("article_id"), text_source=a.get("text_source", "page"))
    return Delivery(
        id=r["id"], channel=r["channel"], rule=r["rule"], alert=alert,
        status=r["status"], attempts=r["attempts"],
        # the retry budget (delivery.max_age) counts from a manual requeue, if any
        created_at=must_ts(r.get("requeued_at") or r["created_at"]),
        next_attempt_at=must_ts(r["next_attempt_at"]),
        last_error=r["last_error"], digest_id=r.get("digest_id"), story_id=r.get("story_id"))
