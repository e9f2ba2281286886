"""`watcher db copy --to postgresql://...`: an SQLite database's every table, copied
into an empty PostgreSQL database and verified by counts."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from watcher.core.errors import StoreError

# In the order their foreign keys need; the daemons' registry is not copied (the
# daemons register themselves).
TABLES = ("feeds", "articles", "article_sources", "story_keys", "pruned_entries", "matches",
          "deliveries", "websub", "alert_feedback", "rule_mutes", "web_sessions")
_SEQUENCES = (("articles", "id"), ("matches", "id"))


def _converter(pg_type: str) -> Callable[[Any], Any]:
    from psycopg.types.json import Jsonb

    from watcher.store.sqlite import from_ts

    if pg_type == "timestamp with time zone":
        return from_ts
    if pg_type == "jsonb":
        return lambda v: None if v is None else Jsonb(json.loads(v))
    if pg_type == "boolean":
        return lambda v: None if v is None else bool(v)
    if pg_type == "bytea":
        return lambda v: None if v is None else bytes(v)
    return lambda v: v


def _rows(src: sqlite3.Connection, table: str, columns: list[str],
          convert: list[Callable[[Any], Any]]) -> Iterator[tuple[Any, ...]]:
    cursor = src.execute(f"SELECT {', '.join(columns)} FROM {table}")
    while batch := cursor.fetchmany(2000):
        for row in batch:
            yield tuple(c(v) for c, v in zip(convert, row, strict=True))


def copy_to_postgres(sqlite_path: Path, url: str,
                     progress: Callable[[str, int], None] | None = None
                     ) -> dict[str, tuple[int, int]]:
    """Copy every table; table -> (rows in SQLite, rows in PostgreSQL). Raises
    StoreError when the target already holds data or a count differs."""
    from watcher.store.postgres import PostgresStore
    from watcher.store.sqlite import SqliteStore

    SqliteStore(sqlite_path).close()  # brings the file to this watcher's schema
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    dst = PostgresStore(url)
    counts: dict[str, tuple[int, int]] = {}
    try:
        with dst._tx() as conn:
            if any(conn.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()
                   for t in TABLES):
                raise StoreError(f"database {dst.name}: not empty; copy into an empty "
                                 "database")
            for table in TABLES:
                types = {r["column_name"]: r["data_type"] for r in conn.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE "
                    "table_name = %s AND is_generated = 'NEVER'", [table]).fetchall()}
                have = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
                columns = [c for c in have if c in types]
                convert = [_converter(types[c]) for c in columns]
                with conn.cursor().copy(
                        f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in _rows(src, table, columns, convert):
                        copy.write_row(row)
                theirs = src.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                counted = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()
                ours = counted["n"] if counted is not None else 0
                counts[table] = (int(theirs), int(ours))
                if progress is not None:
                    progress(table, int(ours))
                if theirs != ours:
                    raise StoreError(f"copy: {table}: {theirs} rows in {sqlite_path}, {ours} "
                                     f"in {dst.name}; nothing was kept")
            for table, column in _SEQUENCES:
                conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                             f"COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)")
    finally:
        src.close()
        dst.close()
    return counts
