"""One daemon per database: an advisory lock on a file beside it."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from watcher.core.errors import StoreError


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


class DaemonLock:
    """Held for the life of `watcher run`; the kernel drops it if the process dies."""

    def __init__(self, database: Path) -> None:
        self.path = lock_path(database)
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            raise StoreError(f"database {self.path.with_suffix('')}: {folder} is a file, "
                             "not a folder")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"database {self.path.with_suffix('')}: cannot create its lock "
                             f"file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            fh.close()
            raise StoreError(
                f"database {self.path.with_suffix('')} is in use by another watcher daemon "
                f"(pid {pid}); stop it first. Read-only commands (feeds, search, status, "
                "deliveries) work alongside it.") from None
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
        except OSError as exc:
            fh.close()
            raise StoreError(f"database {self.path.with_suffix('')}: cannot write its lock "
                             f"file {self.path}: {exc.strerror or exc}") from None
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(database: Path) -> int | None:
    """The pid of the daemon holding the database, or None when none runs."""
    path = lock_path(database)
    if not path.exists():
        return None
    with path.open("r", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return None
