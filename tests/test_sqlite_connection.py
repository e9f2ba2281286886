"""watcher.store.sqlite.connection does what sqlite-utils' Database does for the calls
the store makes, and the migrations' bookkeeping matches sqlite-utils' own."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from watcher.store.sqlite import SqliteStore
from watcher.store.sqlite.connection import Connection
from watcher.store.sqlite.migrations import migrations

Op = Callable[[Any], object]

# Each: what it does to a fresh database with table t(x UNIQUE); the state after it
# (rows, inside a transaction or not, the error raised) must be the same both ways.
OPS: list[tuple[str, list[Op]]] = [
    ("a write outside a transaction is committed",
     [lambda db: db.execute("INSERT INTO t VALUES (?)", [1])]),
    ("a read leaves no transaction open",
     [lambda db: db.execute("SELECT * FROM t").fetchall()]),
    ("a failed write outside a transaction is rolled back",
     [lambda db: db.execute("INSERT INTO t VALUES (1)"),
      lambda db: db.execute("INSERT INTO t VALUES (1)")]),
    ("BEGIN stays the caller's",
     [lambda db: db.execute("BEGIN"), lambda db: db.execute("INSERT INTO t VALUES (2)")]),
    ("a named parameter", [lambda db: db.execute("INSERT INTO t VALUES (:x)", {"x": 3})]),
    ("atomic commits", [lambda db: _atomic(db, ["INSERT INTO t VALUES (4)"])]),
    ("atomic rolls back on an error",
     [lambda db: _atomic(db, ["INSERT INTO t VALUES (5)", "INSERT INTO t VALUES (5)"])]),
    ("atomic inside a transaction is a savepoint",
     [lambda db: db.execute("BEGIN"),
      lambda db: _atomic(db, ["INSERT INTO t VALUES (6)", "INSERT INTO t VALUES (6)"]),
      lambda db: db.execute("INSERT INTO t VALUES (7)")]),
    ("table names", [lambda db: db.table_names()]),
    ("recursive triggers are on", [lambda db: db.execute("PRAGMA recursive_triggers").fetchall()]),
]


def _atomic(db: Any, statements: list[str]) -> None:
    with db.atomic():
        for sql in statements:
            db.execute(sql)


def _state(path: Path, make: Callable[[sqlite3.Connection], Any], ops: list[Op]) -> list[Any]:
    db = make(sqlite3.connect(str(path)))
    db.conn.execute("CREATE TABLE t (x INTEGER UNIQUE)")
    seen: list[Any] = []
    for op in ops:
        try:
            result = op(db)
            seen.append(result if isinstance(result, list) else None)
        except sqlite3.Error as exc:
            seen.append(f"{type(exc).__name__}: {exc}")
        seen.append(db.conn.in_transaction)
    other = sqlite3.connect(str(path))  # what another connection sees: what was committed
    seen.append(other.execute("SELECT x FROM t ORDER BY x").fetchall())
    other.close()
    db.conn.close()
    return seen


@pytest.mark.parametrize(("what", "ops"), OPS, ids=[w for w, _ in OPS])
def test_the_connection_behaves_as_sqlite_utils(tmp_path: Path, what: str,
                                                ops: list[Op]) -> None:
    ours = _state(tmp_path / "ours.db", Connection, ops)
    theirs = _state(tmp_path / "theirs.db", sqlite_utils.Database, ops)
    assert ours == theirs, what


def test_migrations_pending_and_applied_as_sqlite_utils_reads_them(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "w.db").close()
    conn = sqlite3.connect(str(tmp_path / "w.db"))
    real = migrations._migrations()
    db = sqlite_utils.Database(conn)
    assert migrations.applied(conn) == [m.name for m in real.applied(db)] == migrations.names
    conn.execute("DELETE FROM _sqlite_migrations WHERE name = ?", [migrations.names[-1]])
    conn.commit()
    assert migrations.pending(conn) == [m.name for m in real.pending(db)] \
        == [migrations.names[-1]]
    conn.close()


def test_opening_an_up_to_date_database_does_not_import_sqlite_utils(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "w.db").close()  # created and migrated: sqlite-utils used here
    code = ("import sys\nfrom watcher.store.sqlite import SqliteStore\n"
            f"s = SqliteStore({str(tmp_path / 'w.db')!r})\n"
            "print(s.schema_version())\ns.close()\n"
            "print(sorted(m for m in ('sqlite_utils', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    known = len(migrations.names)
    assert out == [f"({known}, {known})", "[]"]
