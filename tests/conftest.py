from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import LoopbackServer, WebhookReceiver

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"


@pytest.fixture(scope="session", autouse=True)
def _settings_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The commands the tests run keep their validated configs here, not in ~/.cache."""
    os.environ["WATCHER_CACHE_DIR"] = str(tmp_path_factory.mktemp("settings-cache"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A PostgreSQL server for the session (see tests/pg.py)."""
    from tests.pg import cluster

    with cluster() as url:
        yield url


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    from tests.pg import new_database

    return new_database(pg_server)


@pytest.fixture
def seed_server() -> Iterator[LoopbackServer]:
    server = LoopbackServer(root=SEEDS)
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


def run_watcher(*args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("WATCHER_CONFIG", None) if env is None or "WATCHER_CONFIG" not in env else None
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=ROOT)
