"""Connections (a psycopg pool), transactions, errors and the schema's version.

Each thread has at most one transaction at a time: the store's methods called
inside `transaction()` on that thread use its connection, and nest as savepoints.
Several daemons share the database: what they must not do twice is decided by
row locks (`FOR UPDATE SKIP LOCKED`), unique constraints and advisory locks.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from watcher.core.errors import StoreError
from watcher.store.postgres.migrations import MIGRATIONS

Row = dict[str, Any]
# Advisory lock keys (pg_advisory_lock takes a bigint): one for applying migrations.
_MIGRATION_LOCK = 0x77617463_68657201  # "watcher\x01"


def describe(conninfo: str) -> str:
    """host:port/dbname of a connection string, never its password."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "PostgreSQL (unreadable connection string)"
    host = parts.get("host") or "localhost (libpq default)"
    return f"postgresql://{host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


class PgBase:
    def __init__(self, conninfo: str, max_connections: int = 8,
                 connect_timeout_s: float = 10.0) -> None:
        self.conninfo = conninfo
        self.name = describe(conninfo)
        self._local = threading.local()
        try:  # the reason libpq gives (host, port, refused, password) beats a pool timeout
            with psycopg.connect(conninfo, connect_timeout=int(connect_timeout_s)):
                pass
        except psycopg.Error as exc:
            raise StoreError(f"database {self.name}: cannot connect: {_reason(exc)}") from None
        self.pool = ConnectionPool(conninfo, min_size=1, max_size=max_connections,
                                   kwargs={"autocommit": True, "row_factory": dict_row},
                                   configure=_configure, open=False, timeout=30,
                                   name="watcher")
        self.pool.open(wait=True, timeout=connect_timeout_s)
        self.migrate()

    # -- connections and transactions ---------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Row]]:
        """This thread's transaction's connection, or one from the pool."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._errors(), self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._tx():
            yield

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[Row]]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            with self._errors(), current.transaction():
                yield current
            return
        with self._errors(), self.pool.connection() as conn:
            self._local.conn = conn
            try:
                with conn.transaction():
                    yield conn
            finally:
                self._local.conn = None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure,
                psycopg.OperationalError) as exc:
            if isinstance(exc, psycopg.OperationalError):
                # The server dropped connections: the pool's idle ones are likely dead
                # too, and each would cost the next try.
                with contextlib.suppress(Exception):
                    self.pool.check()
            raise StoreError(f"database {self.name}: {_reason(exc)}", transient=True) from None
        except psycopg.Error as exc:
            raise StoreError(f"database {self.name}: {_reason(exc)}") from None
        except PoolTimeout as exc:
            raise StoreError(f"database {self.name}: no connection: {_reason(exc)}") from None

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        with self._connection() as conn, self._errors():
            cur = conn.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

    def _value(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        rows = self._rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def _exec(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """The statement's row count."""
        with self._connection() as conn, self._errors():
            return conn.execute(sql, params).rowcount

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self._connection() as conn, self._errors(), conn.cursor() as cur:
            cur.executemany(sql, rows)

    # -- the schema ------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations not applied yet, under an advisory lock (several daemons
        may start at once); refuse a schema newer than this watcher knows."""
        with self._errors(), self.pool.connection() as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", [_MIGRATION_LOCK])
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer "
                             "PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL "
                             "DEFAULT now())")
                applied = {r["version"] for r in conn.execute(
                    "SELECT version FROM schema_migrations").fetchall()}
                newer = sorted(v for v in applied if v > len(MIGRATIONS))
                if newer:
                    raise StoreError(
                        f"database {self.name}: its schema is at version {max(applied)}, "
                        f"newer than this watcher knows ({len(MIGRATIONS)}); upgrade watcher")
                done = 0
                for version, (name, sql) in enumerate(MIGRATIONS, start=1):
                    if version in applied:
                        continue
                    with conn.transaction():
                        conn.execute(sql)
                        conn.execute("INSERT INTO schema_migrations (version, name) "
                                     "VALUES (%s, %s)", [version, name])
                    done += 1
                return done
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [_MIGRATION_LOCK])

    def schema_version(self) -> tuple[int, int]:
        return int(self._value("SELECT coalesce(max(version), 0) FROM schema_migrations")), \
            len(MIGRATIONS)

    def lock_story_keys(self, keys: Sequence[int]) -> None:
        """Until this transaction ends, no other daemon places an article sharing one
        of these band keys: a story decided on what was read stays true when written.
        Taken in key order, so two daemons never wait on each other in a circle."""
        if keys:
            self._rows("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k "
                       "ORDER BY k", [sorted(set(keys))])

    # -- health --------------------------------------------------------------------------

    def ping(self) -> None:
        self._rows("SELECT 1")

    def check_writable(self) -> None:
        with self._tx() as conn, self._errors():
            conn.execute("CREATE TEMPORARY TABLE IF NOT EXISTS watcher_writable (x int)")
            conn.execute("SELECT pg_current_xact_id()")

    def check_intact(self) -> None:
        """A server's database does not vanish from under an open connection as a file
        can; losing it shows as errors, which the daemon handles."""

    def close(self) -> None:
        self.pool.close()


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
