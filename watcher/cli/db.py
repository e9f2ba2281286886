"""`watcher db prune|migrate|copy`: the database's upkeep."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from watcher.cli.common import Progress, load_settings_for, open_store_for
from watcher.core.errors import ConfigError
from watcher.core.intents import Retention
from watcher.store import is_server_url, open_store, prune


def cmd_prune(args: argparse.Namespace) -> int:
    settings, store = open_store_for(args)
    retention = Retention(settings.retention.days, settings.retention.matched_days)
    now = datetime.now(UTC)
    try:
        bar = Progress(store.count_prunable(now, retention), "pruning", "article(s)", 2000)
        try:
            removed = prune(store, now, retention, progress=bar)
        finally:
            bar.close()
    finally:
        store.close()
    print(f"db prune: removed {removed} article(s) (unmatched older than "
          f"{settings.retention.days:g} days, matched older than "
          f"{settings.retention.matched_days:g} days)")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Opening the store applies what is pending (and refuses a newer schema)."""
    settings = load_settings_for(args)
    store = open_store(settings.database)
    try:
        found, known = store.schema_version()
        store.migrate()
    finally:
        store.close()
    print(f"db migrate: {settings.database_shown} is at schema version {found} "
          f"(this watcher knows {known})")
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    settings = load_settings_for(args)
    if settings.shared_database:
        raise ConfigError("db copy: the configured database is already PostgreSQL; "
                          "copy reads an SQLite database")
    if not is_server_url(args.to):
        raise ConfigError(f"db copy: --to: {args.to!r} is not a postgresql:// URL")
    from watcher.store.copy import copy_to_postgres

    counts = copy_to_postgres(Path(settings.database), args.to,
                              progress=lambda table, n: print(f"  {table}: {n} row(s)"))
    total = sum(ours for _, ours in counts.values())
    print(f"db copy: {total} row(s) in {len(counts)} table(s) copied and verified by count; "
          "set `database:` to the new URL to use it")
    return 0
