"""The web console's logins, kept across restarts and shared by every process on the
database; only a digest of each session token is stored."""

from __future__ import annotations

from datetime import datetime

from watcher.core.records import WebSession
from watcher.store.sqlite.base import SqliteBase, must_ts, ts


class SessionsStore(SqliteBase):
    def open_web_session(self, session: WebSession) -> None:
        with self._atomic():
            self._exec("DELETE FROM web_sessions WHERE expires_at < ?",
                       [ts(session.created_at)])
            self._exec("INSERT INTO web_sessions (token_hash, name, credential, created_at, "
                       "expires_at) VALUES (?, ?, ?, ?, ?)",
                       [session.token_hash, session.name, session.credential,
                        ts(session.created_at), ts(session.expires_at)])

    def web_session(self, token_hash: str, now: datetime) -> WebSession | None:
        rows = self._rows("SELECT * FROM web_sessions WHERE token_hash = ? AND expires_at >= ?",
                          [token_hash, ts(now)])
        if not rows:
            return None
        r = rows[0]
        return WebSession(r["token_hash"], r["name"], r["credential"],
                          must_ts(r["created_at"]), must_ts(r["expires_at"]))

    def close_web_session(self, token_hash: str) -> None:
        with self._atomic():
            self._exec("DELETE FROM web_sessions WHERE token_hash = ?", [token_hash])

    def close_web_sessions(self, name: str, keep_credential: str | None = None) -> int:
        with self._atomic():
            return self._exec("DELETE FROM web_sessions WHERE name = ? AND credential IS NOT ?",
                              [name, keep_credential]).rowcount
