"""The connection, its lock and transactions, and how times are written.

Times are stored as UTC ISO-8601 text with a fixed width, so they sort and
compare as strings and stay readable in the sqlite3 shell.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.core.errors import StoreError
from watcher.store.sqlite.connection import Connection
from watcher.store.sqlite.migrations import migrations

Row = dict[str, Any]


def ts(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    # isoformat is C code, much cheaper than strftime; the same text.
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    # fromisoformat is C code (strptime is Python): it reads what ts() writes, "Z" included
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def must_ts(value: str | None) -> datetime:
    """A time the schema declares NOT NULL."""
    parsed = from_ts(value)
    if parsed is None:
        raise StoreError(f"a required time is missing ({value!r})")
    return parsed


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


class SqliteBase:
    """One connection, shared by the event loop and threads (the daily prune, the
    CLI's progress). Every statement runs under `_lock`, and a transaction with
    everything inside it belongs to the thread holding it, so no thread's writes
    land in another's transaction."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s,
                                   check_same_thread=False)
            self.db = Connection(conn)
            self.db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self._refuse_newer_schema()
            migrations.apply(conn)
            st = os.stat(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"database {self.path}: {_reason(exc)}") from None
        self._identity = (st.st_dev, st.st_ino)

    def _refuse_newer_schema(self) -> None:
        """A database migrated by a newer watcher is not opened: this one would not
        know its tables."""
        known = migrations.names
        applied = migrations.applied(self.db.conn)
        unknown = [n for n in applied if n not in known]
        if unknown:
            raise StoreError(f"database {self.path}: its schema is at version {len(applied)} "
                             f"({unknown[-1]}), newer than this watcher knows ({len(known)}, "
                             f"{known[-1]}); upgrade watcher")

    def schema_version(self) -> tuple[int, int]:
        """(version applied, version this watcher knows)."""
        return len(migrations.applied(self.db.conn)), len(migrations.names)

    def migrate(self) -> int:
        """Apply pending migrations (done at open already); how many were pending."""
        with self._lock:
            return migrations.apply(self.db.conn)

    def lock_story_keys(self, keys: Sequence[int]) -> None:
        """One writer at a time already (the daemon lock): nothing to lock."""

    def check_writable(self) -> None:
        """Raises StoreError unless a write can be committed now (the daemon's start)."""
        with self._write():
            self._exec("CREATE TABLE IF NOT EXISTS watcher_meta "
                       "(key TEXT PRIMARY KEY, value TEXT)")
            self._exec("INSERT OR REPLACE INTO watcher_meta (key, value) "
                       "VALUES ('writable_check', datetime('now'))")

    def check_intact(self) -> None:
        """Raises StoreError when the file opened is no longer at its path: removed
        (with its folder, say) or replaced. Writes would go to a file nobody can
        open again, and a restart would begin with an empty database."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise StoreError(f"database {self.path} was removed while watcher had it "
                             "open; stopping so that nothing is written to a deleted file"
                             ) from None
        except OSError as exc:
            raise StoreError(f"database {self.path}: {_reason(exc)}") from None
        if (st.st_dev, st.st_ino) != self._identity:
            raise StoreError(f"database {self.path} was replaced by another file while "
                             "watcher had it open; stopping")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors (a full disk, a read-only file) as StoreError, naming the
        database; whatever else the code inside a transaction raises passes as it is."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"database {self.path}: {_reason(exc)}") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Many writes as one commit (the methods used inside nest as savepoints).

        Nothing inside may await: another task's writes would join the transaction.
        """
        with self._atomic():
            yield

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """sqlite-utils' atomic(), but every savepoint has the same name.

        Its random names made SQLite compile both statements afresh each time,
        several times an article. Nested savepoints may share a name: RELEASE and
        ROLLBACK TO act on the innermost one.
        """
        with self._lock, self._errors():
            conn = self.db.conn
            if not conn.in_transaction:
                with self.db.atomic():
                    yield
                return
            conn.execute("SAVEPOINT watcher")
            try:
                yield
            except BaseException:
                if conn.in_transaction:  # a failure can end the whole transaction
                    conn.execute("ROLLBACK TO SAVEPOINT watcher")
                    conn.execute("RELEASE SAVEPOINT watcher")
                raise
            conn.execute("RELEASE SAVEPOINT watcher")

    @contextmanager
    def _write(self) -> Iterator[None]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so that two
        processes reading then updating the outbox never interleave; under the
        lock, like every other transaction on this connection."""
        with self._lock, self._errors():
            conn = self.db.conn
            if conn.in_transaction:
                with self._atomic():
                    yield
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            try:
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (a deferred constraint, a full disk) can leave the
                # transaction open: every later write would join it and never commit.
                if conn.in_transaction:
                    conn.rollback()
                raise

    def ping(self) -> None:
        """Raises StoreError if the database does not answer."""
        with self._lock, self._errors():
            self.db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        with self._lock, self._errors():  # not inside another thread's transaction
            cur = self.db.execute(sql, params)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

    def _value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row (None when there is no row)."""
        with self._lock, self._errors():
            row = self.db.execute(sql, params).fetchone()
        return row[0] if row else None

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._lock, self._errors():
            return self.db.execute(sql, params)
