"""Matches and the outbox on PostgreSQL: a delivery claimed by one daemon is skipped
by the others (FOR UPDATE SKIP LOCKED) until its lease runs out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from watcher.core.digest import dropped_why
from watcher.core.intents import HoldCandidate, HoldDecision, Matched
from watcher.core.models import Alert, Delivery
from watcher.core.records import DeliveryRecord
from watcher.store.postgres.base import PgBase, Row

# Held while classifying, so two daemons never decide one (rule, channel)'s holds at once.
_CLASSIFY_LOCK = 0x77617463_68657202


class OutboxPg(PgBase):
    def record_matches(self, matched: Matched) -> int:
        created = 0
        with self._tx():
            for m in matched.matches:
                rows = self._rows(
                    "INSERT INTO matches (article_id, rule, query, field, snippet, hits, "
                    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (article_id, rule) DO NOTHING RETURNING id",
                    [matched.article_id, m.rule, m.query, m.field, m.snippet,
                     Jsonb([h.__dict__ for h in m.hits]), matched.at])
                if not rows:
                    continue
                for d in matched.deliveries:
                    if d.rule == m.rule:
                        created += self._exec(
                            "INSERT INTO deliveries (id, match_id, article_id, rule, channel, "
                            "alert, created_at, next_attempt_at, story_id) VALUES (%s, %s, %s, "
                            "%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            [d.id, rows[0]["id"], matched.article_id, d.rule, d.channel,
                             Jsonb(d.alert.as_dict()), matched.at, matched.at,
                             matched.story_id])
            self._exec("UPDATE articles SET matched_at = %s WHERE id = %s",
                       [matched.at, matched.article_id])
        return created

    def hold_candidates(self) -> tuple[list[HoldCandidate],
                                       dict[tuple[str, str], datetime | None]]:
        rows = self._rows("SELECT id, rule, channel, created_at FROM deliveries "
                          "WHERE classified_at IS NULL ORDER BY created_at, id")
        candidates = [HoldCandidate(r["id"], r["rule"], r["channel"], r["created_at"])
                      for r in rows]
        keys = sorted({(c.rule, c.channel) for c in candidates})
        return candidates, {k: self._last_immediate(*k) for k in keys}

    def _last_immediate(self, rule: str, channel: str) -> datetime | None:
        value: datetime | None = self._value(
            "SELECT max(created_at) FROM deliveries WHERE rule = %s AND channel = %s "
            "AND classified_at IS NOT NULL AND held_until IS NULL", [rule, channel])
        return value

    def apply_holds(self, decisions: Sequence[HoldDecision], now: datetime) -> int:
        applied = 0
        with self._tx():
            self._rows("SELECT pg_advisory_xact_lock(%s)", [_CLASSIFY_LOCK])
            stale = {(d.rule, d.channel) for d in decisions
                     if self._last_immediate(d.rule, d.channel) != d.basis}
            for d in decisions:
                if (d.rule, d.channel) in stale:
                    continue
                if d.release_at is None or d.digest_id is None:
                    applied += self._exec("UPDATE deliveries SET classified_at = %s "
                                          "WHERE id = %s AND classified_at IS NULL", [now, d.id])
                    continue
                if d.drop:
                    applied += self._exec(
                        "UPDATE deliveries SET classified_at = %s, held_until = %s, "
                        "status = 'dropped', last_error = %s WHERE id = %s "
                        "AND classified_at IS NULL",
                        [now, d.release_at, dropped_why(d.release_at), d.id])
                    continue
                group = d.digest_id
                if self._rows("SELECT 1 FROM deliveries WHERE digest_id = %s AND (status IN "
                              "('sent', 'dead') OR claimed_until > %s) LIMIT 1", [group, now]):
                    group = f"{group}.{d.id[-8:]}"
                applied += self._exec(
                    "UPDATE deliveries SET classified_at = %s, held_until = %s, digest_id = %s, "
                    "next_attempt_at = %s WHERE id = %s AND classified_at IS NULL",
                    [now, d.release_at, group, d.release_at, d.id])
        return applied

    def claim_deliveries(self, now: datetime, lease_s: float, limit: int,
                         ignore_schedule: bool = False, owner: str | None = None,
                         tried_before: datetime | None = None) -> list[Delivery]:
        due = ("AND (next_attempt_at <= %(now)s OR held_until IS NULL OR attempts > 0) "
               if ignore_schedule else "AND next_attempt_at <= %(now)s ")
        if tried_before is not None:
            due += "AND (last_attempt_at IS NULL OR last_attempt_at < %(tried)s) "
        params = {"now": now, "until": now + timedelta(seconds=lease_s), "limit": limit,
                  "tried": tried_before, "owner": owner}
        with self._tx():
            rows = self._rows(
                "WITH picked AS (SELECT id FROM deliveries WHERE status IN ('pending', "
                f"'retrying') AND classified_at IS NOT NULL {due}"
                "AND (claimed_until IS NULL OR claimed_until <= %(now)s) "
                "ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                "UPDATE deliveries d SET claimed_until = %(until)s, claimed_by = %(owner)s "
                "FROM picked WHERE d.id = picked.id RETURNING d.*", params)
            for g in sorted({r["digest_id"] for r in rows if r["digest_id"]}):
                rows += self._rows(  # the rest of the digest, whatever its own schedule
                    "WITH picked AS (SELECT id FROM deliveries WHERE digest_id = %(g)s "
                    "AND status IN ('pending', 'retrying') AND classified_at IS NOT NULL "
                    "AND (claimed_until IS NULL OR claimed_until <= %(now)s) "
                    "FOR UPDATE SKIP LOCKED) UPDATE deliveries d SET claimed_until = "
                    "%(until)s, claimed_by = %(owner)s FROM picked WHERE d.id = picked.id "
                    "RETURNING d.*", {**params, "g": g})
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        return [_delivery(r) for r in rows]

    def renew_claim(self, ids: Sequence[str], owner: str, now: datetime,
                    lease_s: float) -> bool:
        n = self._exec("UPDATE deliveries SET claimed_until = %s WHERE id = ANY(%s) "
                       "AND claimed_by = %s AND status IN ('pending', 'retrying')",
                       [now + timedelta(seconds=lease_s), list(ids), owner])
        return n == len(set(ids))

    def claim_owners(self, now: datetime) -> list[str]:
        return [r["claimed_by"] for r in self._rows(
            "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_until > %s "
            "AND claimed_by IS NOT NULL", [now])]

    def release_claims_of(self, owner: str) -> int:
        return self._exec("UPDATE deliveries SET claimed_until = NULL, claimed_by = NULL "
                          "WHERE claimed_by = %s", [owner])

    def mark_sent(self, ids: Sequence[str], now: datetime) -> None:
        self._exec("UPDATE deliveries SET status = 'sent', sent_at = %s, last_attempt_at = %s, "
                   "attempts = attempts + 1, claimed_until = NULL, last_error = NULL "
                   "WHERE id = ANY(%s)", [now, now, list(ids)])

    def mark_failed(self, ids: Sequence[str], now: datetime, error: str,
                    next_attempt_at: datetime | None) -> None:
        self._exec("UPDATE deliveries SET status = %s, attempts = attempts + 1, "
                   "last_error = %s, last_attempt_at = %s, "
                   "next_attempt_at = COALESCE(%s, next_attempt_at), claimed_until = NULL "
                   "WHERE id = ANY(%s)",
                   ["dead" if next_attempt_at is None else "retrying", error, now,
                    next_attempt_at, list(ids)])

    def release(self, ids: Sequence[str]) -> None:
        self._exec("UPDATE deliveries SET claimed_until = NULL WHERE id = ANY(%s)", [list(ids)])

    def requeue_deliveries(self, now: datetime, ids: Sequence[str] = (),
                           all_dead: bool = False) -> list[str]:
        with self._tx():
            rows = self._rows(
                "SELECT id, digest_id FROM deliveries WHERE status = 'dead'" if all_dead else
                "SELECT id, digest_id FROM deliveries WHERE id = ANY(%s) "
                "AND status IN ('dead', 'retrying', 'pending')", [] if all_dead else [list(ids)])
            wanted = {r["id"] for r in rows}
            groups = [r["digest_id"] for r in rows if r["digest_id"]]
            if groups:
                wanted |= {r["id"] for r in self._rows(
                    "SELECT id FROM deliveries WHERE digest_id = ANY(%s) AND status != 'sent'",
                    [groups])}
            self._exec("UPDATE deliveries SET status = 'pending', next_attempt_at = %s, "
                       "requeued_at = %s, claimed_until = NULL WHERE id = ANY(%s)",
                       [now, now, sorted(wanted)])
        return sorted(wanted)

    def deliveries(self, status: str | None = None, rule: str | None = None,
                   story_id: int | None = None) -> list[DeliveryRecord]:
        sql = ("SELECT id, rule, channel, status, attempts, created_at, next_attempt_at, "
               "last_error, sent_at, article_id, held_until, digest_id, last_attempt_at, "
               "alert->>'title' AS title FROM deliveries WHERE true")
        params: list[Any] = []
        for column, value in (("status", status), ("rule", rule), ("story_id", story_id)):
            if value is not None:
                sql += f" AND {column} = %s"
                params.append(value)
        return [DeliveryRecord(**r) for r in self._rows(sql + " ORDER BY created_at, id",
                                                        params)]


def _delivery(r: Row) -> Delivery:
    a = r["alert"] if isinstance(r["alert"], dict) else json.loads(r["alert"])
    alert = Alert(
        delivery_id=a["id"], rule=a["rule"], query=a.get("query", ""), title=a["title"],
        url=a.get("url"), feed=a["feed"], published=a.get("published"), field=a["field"],
        snippet=a["snippet"], matched=tuple(a.get("matched", ())),
        article_id=a.get("article_id"), text_source=a.get("text_source", "page"))
    return Delivery(
        id=r["id"], channel=r["channel"], rule=r["rule"], alert=alert, status=r["status"],
        attempts=r["attempts"], created_at=r["requeued_at"] or r["created_at"],
        next_attempt_at=r["next_attempt_at"], last_error=r["last_error"],
        digest_id=r["digest_id"], story_id=r["story_id"])
