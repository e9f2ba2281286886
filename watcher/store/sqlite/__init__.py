"""The SQLite store: the embedded default, one file in WAL mode.

Split by domain; `SqliteStore` is all of them on one connection.
"""

from __future__ import annotations

from watcher.store.sqlite.alerts import AlertsStore
from watcher.store.sqlite.archive import ArchiveStore
from watcher.store.sqlite.base import from_ts, ts
from watcher.store.sqlite.daemons import DaemonsStore
from watcher.store.sqlite.feeds import FeedsStore
from watcher.store.sqlite.sessions import SessionsStore
from watcher.store.sqlite.websub import WebSubStore


class SqliteStore(FeedsStore, ArchiveStore, AlertsStore, DaemonsStore, WebSubStore,
                  SessionsStore):
    """Feeds, articles and stories, the outbox and the archive reads, in one file."""


__all__ = ["SqliteStore", "from_ts", "ts"]
