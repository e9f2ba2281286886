"""The connection as the store uses it: the few sqlite-utils `Database` methods it
calls, without importing sqlite-utils.

Importing sqlite-utils loads pluggy, click, dateutil and numpy (for its column types),
a large share of a reading command's start-up (`watcher status`). The store itself
writes its own SQL; sqlite-utils is needed only to apply migrations, and is imported
then (`migrations.apply`). What this class does is what `sqlite_utils.Database` does
for the same calls (sqlite-utils 4): `tests/test_store.py` runs both side by side.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

# statements after which an implicit transaction is the caller's own business
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT",
                                  "RELEASE"})


def _first_keyword(sql: str) -> str:
    return sql.lstrip().split(None, 1)[0].rstrip(";").upper() if sql.strip() else ""


class Connection:
    """`execute` commits what one statement opened outside a transaction, `atomic`
    nests as savepoints, and recursive triggers are on, as with sqlite-utils."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.execute("PRAGMA recursive_triggers=on;")

    def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None
                ) -> sqlite3.Cursor:
        was_in_transaction = self.conn.in_transaction
        try:
            cursor = (self.conn.execute(sql) if parameters is None
                      else self.conn.execute(sql, parameters))
        except Exception:
            if not was_in_transaction and self.conn.in_transaction:
                self.conn.execute("ROLLBACK")  # else it would capture every later write
            raise
        if (not was_in_transaction and self.conn.in_transaction
                and cursor.description is None
                and _first_keyword(sql) not in _TRANSACTION_CONTROL):
            self.conn.execute("COMMIT")
        return cursor

    @contextmanager
    def atomic(self) -> Iterator[Connection]:
        """A transaction; inside one, a savepoint."""
        if self.conn.in_transaction:
            self.conn.execute("SAVEPOINT connection_atomic")
            try:
                yield self
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK TO SAVEPOINT connection_atomic")
                    self.conn.execute("RELEASE SAVEPOINT connection_atomic")
                raise
            self.conn.execute("RELEASE SAVEPOINT connection_atomic")
            return
        self.conn.execute("BEGIN")
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.rollback()
            raise

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]

    def close(self) -> None:
        self.conn.close()
