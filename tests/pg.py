"""A real PostgreSQL cluster for the tests, started by the test set-up.

`WATCHER_TEST_PG_URL` names a server to use instead (a URL whose role may create
databases). Without either, the PostgreSQL tests skip and say why; under CI
(`CI=true`) they fail instead, since CI installs PostgreSQL (.ci/run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI: {why}")
    pytest.skip(f"PostgreSQL tests skipped: {why}")


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """A throwaway cluster on 127.0.0.1 (trust authentication), stopped at the end."""
    url = os.environ.get("WATCHER_TEST_PG_URL")
    if url:
        yield url
        return
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        _unavailable("no initdb/pg_ctl found (install the postgresql package, or set "
                     "WATCHER_TEST_PG_URL)")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres user to run the server")
    home = Path(tempfile.mkdtemp(prefix="watcher-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, port = home / "data", _free_port()
    init = subprocess.run(_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U",
                                        "postgres", "--no-sync"]),
                          capture_output=True, text=True)
    if init.returncode != 0:
        _unavailable(f"initdb failed: {init.stderr.strip()[-300:]}")
    options = (f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    start = subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l",
                                         str(home / "log"), "-w", "start"]),
                           capture_output=True, text=True)
    if start.returncode != 0:
        _unavailable(f"pg_ctl start failed: {start.stderr.strip()[-300:]}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def new_database(server_url: str) -> str:
    """A fresh, empty database on the server; its URL."""
    import psycopg

    name = "w_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
