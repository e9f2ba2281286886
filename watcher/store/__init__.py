"""Where watcher keeps feeds, articles, stories and the outbox.

`Store` (watcher.store.protocol) is the interface; `open_store` picks the
implementation the configured database names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from watcher.core.errors import StoreError
from watcher.core.intents import Retention
from watcher.store.protocol import Store


def is_server_url(database: str | Path) -> bool:
    return str(database).startswith(("postgresql://", "postgres://"))


def open_store(database: str | Path) -> Store:
    """The store for `database`: a postgresql:// URL is PostgreSQL, a path is SQLite."""
    if is_server_url(database):
        try:
            from watcher.store.postgres import PostgresStore
        except ImportError as exc:
            raise StoreError(f"database postgresql://{str(database).rpartition('@')[2]}: "
                             "PostgreSQL needs the postgres extra (pip install "
                             f"'watcher[postgres]'): {exc}") from None
        return PostgresStore(str(database))
    from watcher.store.sqlite import SqliteStore

    return SqliteStore(database)


def prune(store: Store, now: datetime, retention: Retention, batch: int = 500,
          progress: Callable[[int], None] | None = None) -> int:
    """Apply retention in batches (each its own transaction, so polls can run between
    them), then tidy up. Returns the number of articles removed."""
    removed = 0
    while n := store.prune_batch(now, retention, batch):
        removed += n
        if progress is not None:
            progress(n)
    store.finish_prune(now, retention)
    return removed


__all__ = ["Store", "open_store", "prune"]
