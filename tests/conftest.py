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
