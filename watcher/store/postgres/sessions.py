"""The web console's logins on PostgreSQL, shared by every `watcher web` process on
the database; only a digest of each session token is stored."""

from __future__ import annotations

from datetime import datetime

from watcher.core.records import WebSession
from watcher.store.postgres.base import PgBase


class SessionsPg(PgBase):
    def open_web_session(self, session: WebSession) -> None:
        with self._tx():
            self._exec("DELETE FROM web_sessions WHERE expires_at < %s", [session.created_at])
            self._exec("INSERT INTO web_sessions (token_hash, name, credential, created_at, "
                       "expires_at) VALUES (%s, %s, %s, %s, %s)",
                       [session.token_hash, session.name, session.credential,
                        session.created_at, session.expires_at])

    def web_session(self, token_hash: str, now: datetime) -> WebSession | None:
        rows = self._rows("SELECT token_hash, name, credential, created_at, expires_at "
                          "FROM web_sessions WHERE token_hash = %s AND expires_at >= %s",
                          [token_hash, now])
        return WebSession(**rows[0]) if rows else None

    def close_web_session(self, token_hash: str) -> None:
        with self._tx():
            self._exec("DELETE FROM web_sessions WHERE token_hash = %s", [token_hash])

    def close_web_sessions(self, name: str, keep_credential: str | None = None) -> int:
        with self._tx():
            return self._exec("DELETE FROM web_sessions WHERE name = %s "
                              "AND credential IS DISTINCT FROM %s", [name, keep_credential])
