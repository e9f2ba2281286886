"""The daemons using this database, each registered with a heartbeat."""

from __future__ import annotations

from datetime import datetime

from watcher.core.records import DaemonInfo
from watcher.store.sqlite.base import SqliteBase, must_ts, ts


class DaemonsStore(SqliteBase):
    def register_daemon(self, info: DaemonInfo) -> None:
        with self._atomic():
            self._exec(
                "INSERT OR REPLACE INTO daemons (id, host, pid, started_at, heartbeat_at, "
                "rules_hash, config_hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [info.id, info.host, info.pid, ts(info.started_at), ts(info.heartbeat_at),
                 info.rules_hash, info.config_hash])

    def heartbeat(self, daemon_id: str, now: datetime, rules_hash: str,
                  config_hash: str) -> None:
        with self._atomic():
            self._exec("UPDATE daemons SET heartbeat_at = ?, rules_hash = ?, config_hash = ? "
                       "WHERE id = ?", [ts(now), rules_hash, config_hash, daemon_id])

    def deregister_daemon(self, daemon_id: str) -> None:
        with self._atomic():
            self._exec("DELETE FROM daemons WHERE id = ?", [daemon_id])

    def live_daemons(self, since: datetime) -> list[DaemonInfo]:
        """Daemons whose last heartbeat is at or after `since`, oldest first."""
        return [DaemonInfo(r["id"], r["host"], r["pid"], must_ts(r["started_at"]),
                           must_ts(r["heartbeat_at"]), r["rules_hash"], r["config_hash"])
                for r in self._rows("SELECT * FROM daemons WHERE heartbeat_at >= ? "
                                    "ORDER BY started_at", [ts(since)])]
