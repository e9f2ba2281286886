"""Where watcher keeps feeds, articles, stories and the outbox.

`Store` (watcher.store.protocol) is the interface; `open_store` picks the
implementation the configured database names.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from watcher.core.intents import Retention
from watcher.store.protocol import Store


def open_store(database: str | Path) -> Store:
    """The store for `database`: a file path is SQLite."""
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
