"""The PostgreSQL store: several daemons, on one machine or many, sharing one database.

Split by domain as the SQLite store is; `PostgresStore` is all of them over one
connection pool. Needs the `postgres` extra (psycopg 3 and psycopg_pool).
"""

from __future__ import annotations

from watcher.store.postgres.alerts import AlertsPg
from watcher.store.postgres.archive import ArchivePg
from watcher.store.postgres.feeds import FeedsPg
from watcher.store.postgres.sessions import SessionsPg
from watcher.store.postgres.websub import WebSubPg


class PostgresStore(FeedsPg, ArchivePg, AlertsPg, WebSubPg, SessionsPg):
    """Feeds, articles and stories, the outbox, the archive and the daemons' registry."""


__all__ = ["PostgresStore"]
