"""Storage faults: the database removed under the daemon, unwritable at start, full
while running. Real files, a real small filesystem (tmpfs) where one can be mounted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer, WebhookReceiver, wait_for
from tests.test_lifecycle import FEED, ITEM, Output, get
from watcher.core.errors import StoreError
from watcher.rules import compile_rules, load_rules
from watcher.service.daemon import Daemon
from watcher.settings import load_settings


def feed_with(server: LoopbackServer, *titles: str) -> None:
    items = "".join(ITEM.format(g=f"g{i}", t=t, link="") for i, t in enumerate(titles))
    server.routes["/f.xml"] = (200, {"Content-Type": "application/rss+xml"},
                               FEED.format(items=items).encode())


def config(tmp: Path, server: LoopbackServer, receiver: WebhookReceiver, database: str,
           **extra: object) -> Path:
    cfg = {"database": database, "rules": "rules.yaml",
           "feeds": [{"name": "f", "url": server.url("/f.xml"), "allow_private": True,
                      "interval": "1s", "min_interval": "1s"}],
           "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
           "poll": {"tick": "1s", "min_interval": "1s"}, "fetch": {"fetch_pages": False},
           **extra}
    (tmp / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "missile", "query": "missile", "notify": ["hook"]}]}))
    return tmp / "watcher.yaml"


def start(cfg: Path) -> tuple[subprocess.Popen[str], Output]:
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    return proc, Output(proc)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` at `path`, or a skip saying why there is none."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_removed_database_folder_stops_the_daemon(tmp_path: Path,
                                                   receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    feed_with(server, "A missile story")
    proc, out = start(config(tmp_path, server, receiver, "state/w.db"))
    try:
        assert wait_for(lambda: len(receiver.accepted) == 1, timeout=30), out.text()
        for p in sorted((tmp_path / "state").iterdir()):
            p.unlink()
        (tmp_path / "state").rmdir()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    out._t.join(timeout=5)
    log = out.text()
    assert proc.returncode == 3, log
    assert f"database {tmp_path / 'state' / 'w.db'} was removed" in log
    assert "Traceback" not in log
    assert not (tmp_path / "state").exists()  # nothing was created in its place


def test_an_unusable_database_path_is_refused_at_start(tmp_path: Path,
                                                      receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    try:
        (tmp_path / "state").write_text("a file, not a folder")
        result = run_watcher("run", "--once", "--config",
                             str(config(tmp_path, server, receiver, "state/w.db")))
    finally:
        server.close()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'state'} is a file, not a folder" in result.stderr


def test_a_read_only_database_is_refused_at_start(tmp_path: Path,
                                                 receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    feed_with(server, "A missile story")
    try:
        with tmpfs(tmp_path / "state", "4m") as state:
            cfg = config(tmp_path, server, receiver, "state/w.db")
            assert run_watcher("run", "--once", "--config", str(cfg)).returncode == 0
            subprocess.run(["mount", "-o", "remount,ro", str(state)], check=True)
            result = run_watcher("run", "--once", "--config", str(cfg))
    finally:
        server.close()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "read-only" in result.stderr.lower() or "readonly" in result.stderr.lower()
    assert str(tmp_path / "state") in result.stderr


def test_a_full_disk_is_one_error_a_503_and_nothing_lost(tmp_path: Path,
                                                        receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    feed_with(server, "A missile story")
    with tmpfs(tmp_path / "state", "8m") as state:
        cfg = config(tmp_path, server, receiver, "state/w.db",
                     metrics={"listen": "127.0.0.1:0"})
        proc, out = start(cfg)
        try:
            assert wait_for(lambda: len(receiver.accepted) == 1, timeout=30), out.text()
            port = int(re.search(r"on 127\.0\.0\.1:(\d+)", out.text())[1])
            filler = state / "filler"
            with contextlib.suppress(OSError), filler.open("wb") as fh:
                while True:
                    fh.write(b"\0" * 65536)
            feed_with(server, "A missile story", *(f"Missile story {i} " + "x" * 200
                                                   for i in range(40)))
            assert wait_for(lambda: "polling paused" in out.text(), timeout=30), out.text()
            status, body = get(f"http://127.0.0.1:{port}/healthz")
            assert status == 503 and "full" in body, body
            before = len(receiver.accepted)
            assert not wait_for(lambda: out.text().count("polling paused") > 1, timeout=8)
            filler.unlink()  # room again
            assert wait_for(lambda: len(receiver.accepted) == 41, timeout=60), out.text()
            assert before == 1
            assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
            proc.terminate()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            server.close()
    out._t.join(timeout=5)
    log = out.text()
    assert log.count("polling paused") == 1 and log.count("takes writes again") == 1, log
    assert "Traceback" not in log
    titles = sorted(r.json()["article"]["title"] for r in receiver.accepted)
    assert len(set(titles)) == 41


def test_storage_failures_pause_polling_and_recover_in_process(
        tmp_path: Path, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture) -> None:
    """The same as a full disk, through SQLite's own page limit: SQLITE_FULL."""
    server = LoopbackServer()
    feed_with(server, "A missile story")
    cfg = config(tmp_path, server, receiver, "w.db")
    settings = load_settings(cfg)
    daemon = Daemon(settings, compile_rules(load_rules(settings.rules)))
    db = daemon.store.db  # type: ignore[attr-defined]

    async def go() -> None:
        assert [o.ok for o in await daemon.poll(["f"])] == [True]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        feed_with(server, "A missile story", *(f"Missile {i} " + "y" * 4000 for i in range(30)))
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                daemon.storage.retry_at = None  # no waiting for the backoff in a test
                (outcome,) = await daemon.poll(["f"])
                assert not outcome.ok and "full" in (outcome.error or "")
        assert daemon.storage.problem is not None and "full" in daemon.storage.problem
        assert len([r for r in caplog.records if "polling paused" in r.message]) == 1
        db.execute("PRAGMA max_page_count = 1073741823")
        daemon.storage.retry_at = None
        (outcome,) = await daemon.poll(["f"])
        assert outcome.ok and outcome.new_articles == 30
        assert daemon.storage.problem is None
        await daemon.close()

    try:
        asyncio.run(go())
    finally:
        server.close()
    with pytest.raises(StoreError):
        daemon.store.ping()  # closed


def test_check_intact_names_a_replaced_database(tmp_path: Path) -> None:
    from watcher.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "w.db")
    store.check_intact()
    os.replace(tmp_path / "w.db", tmp_path / "old.db")
    (tmp_path / "w.db").write_bytes(b"")
    with pytest.raises(StoreError, match="was replaced"):
        store.check_intact()
    store.close()


def test_a_flapping_database_is_logged_once_per_lasting_state_change(
        caplog: pytest.LogCaptureFixture) -> None:
    from datetime import UTC, datetime, timedelta

    from watcher.service.polling import StorageHealth

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    health = StorageHealth(clock=lambda: now[0])
    err = StoreError("store: database postgresql://db/w: connection lost")

    def step(seconds: float) -> None:
        now[0] += timedelta(seconds=seconds)

    with caplog.at_level(logging.WARNING):
        for _ in range(10):  # fails and recovers every couple of seconds
            health.failed(err)
            step(1)
            health.succeeded()
            step(1)
        messages = [r.message for r in caplog.records]
        assert sum("polling paused" in m for m in messages) == 1
        assert sum("polling resumes" in m for m in messages) == 1
        health.failed(err)  # a flap that lasts is announced once it has lasted
        for _ in range(12):
            step(10)
            health.failed(err)
        assert sum("polling paused" in r.message for r in caplog.records) == 2
        assert health.problem is not None
        health.succeeded()
        step(400)
        health.failed(err)  # long after the last recovery: a new state, logged at once
        assert sum("polling paused" in r.message for r in caplog.records) == 3
        assert health.retry_at == now[0] + timedelta(seconds=5)
