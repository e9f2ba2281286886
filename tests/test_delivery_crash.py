"""At-least-once across crashes: the real daemon, killed with SIGKILL again and again."""

from __future__ import annotations

import base64
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import yaml
from standardwebhooks import Webhook

from tests.conftest import ROOT
from tests.servers import LoopbackServer, Request, Response, wait_for

ARTICLES = 200
KILLS = 21
SECRET = "whsec_" + base64.b64encode(b"crash-test-secret-0123456789abcd").decode()


def write_site(root: Path, n: int) -> None:
    """A feed of n stories, each with its own page; every one mentions the phrase."""
    (root / "articles").mkdir(parents=True)
    items = []
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    for i in range(n):
        (root / "articles" / f"story-{i}.html").write_text(
            f"<html><head><title>Story {i}</title></head><body><article>"
            f"<h1>Story {i}: army tests a tactical missile</h1>"
            f"<p>On day {i} the army tested a new tactical missile near the coast. "
            f"Officials said test number {i} went as planned and more would follow.</p>"
            f"<p>Analysts said the programme had grown quickly over the past year.</p>"
            f"</article></body></html>")
        items.append(
            f"<item><title>Story {i}: army tests a tactical missile</title>"
            f"<link>{{base}}/articles/story-{i}.html</link><guid>story-{i}</guid>"
            f"<description>Test {i} of a new tactical missile.</description>"
            f"<pubDate>{format_datetime(start + timedelta(minutes=i))}</pubDate></item>")
    (root / "feed.xml.in").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Crash feed</title>'
        "<link>http://example.org/</link><description>x</description>"
        + "".join(items) + "</channel></rss>")


class Receiver(LoopbackServer):
    """Two hooks, /a (signed) and /b; a little slow so that kills land mid-delivery."""

    def __init__(self, root: Path) -> None:
        self.received: list[tuple[str, str]] = []
        self.bad_signatures = 0
        self.down = False  # answer 503 to every POST
        self.lock = threading.Lock()
        super().__init__(root=root)
        feed = (root / "feed.xml.in").read_text().replace("{base}", self.url("").rstrip("/"))
        self.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"},
                                    feed.encode())

    def respond(self, req: Request) -> Response:
        if req.method == "POST" and req.path in ("/a", "/b"):
            if self.down:
                return 503, {}, b"not yet"
            time.sleep(0.02)
            if req.path == "/a":
                try:
                    Webhook(SECRET).verify(req.body, req.headers)
                except Exception:
                    with self.lock:
                        self.bad_signatures += 1
                    return 401, {}, b"bad signature"
            with self.lock:
                self.received.append((req.path, req.headers["webhook-id"]))
            return 200, {}, b"ok"
        return super().respond(req)

    def unique(self, path: str) -> set[str]:
        with self.lock:
            return {i for p, i in self.received if p == path}


def all_sent(db_path: Path) -> bool:
    try:
        with sqlite3.connect(db_path) as db:
            rows = db.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
            return dict(rows.fetchall()) == {"sent": 2 * ARTICLES}
    except sqlite3.Error:
        return False


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Receiver]:
    write_site(tmp_path / "site", ARTICLES)
    server = Receiver(tmp_path / "site")
    yield server
    server.close()


def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, site: Receiver) -> None:
    cfg = {
        "database": "state/watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "crash-feed", "url": site.url("/feed.xml"), "allow_private": True,
                   "interval": "1h"}],
        "channels": {
            "hook-a": {"type": "webhook", "url": site.url("/a"), "secret": SECRET,
                       "timeout": "5s"},
            "hook-b": {"type": "webhook", "url": site.url("/b"), "timeout": "5s"},
        },
        "poll": {"tick": "1s"},
        # The feed's own text carries the match: page extraction would eat the time
        # budget of the test without adding crash points of interest.
        "fetch": {"fetch_pages": False},
        "delivery": {"tick": "200ms", "backoff": ["500ms"]},
    }
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "tactical-missile", "any": ["tactical missile"],
         "notify": ["hook-a", "hook-b"]}]}))
    log = (tmp_path / "daemon.log").open("ab", buffering=0)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(tmp_path / "watcher.yaml")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)

    def started(n: int) -> bool:
        text = (tmp_path / "daemon.log").read_text(errors="replace")
        return text.count("daemon: watching") >= n

    rng = random.Random(20260302)
    kills = 0
    for i in range(KILLS):
        proc = start()
        # A random moment once the daemon is up: while it polls, stores, matches, sends.
        wait_for(lambda i=i, p=proc: started(i + 1) or p.poll() is not None, timeout=20)
        time.sleep(rng.uniform(0.0, 1.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1

    proc = start()
    try:
        wait_for(lambda: started(KILLS + 1) or proc.poll() is not None, timeout=20)
        done = wait_for(lambda: all_sent(tmp_path / "state" / "watcher.db"), timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log.close()
    assert done, (tmp_path / "daemon.log").read_text()[-3000:]
    assert proc.returncode == 0

    with sqlite3.connect(tmp_path / "state" / "watcher.db") as db:
        rows = db.execute("SELECT id, channel, status FROM deliveries").fetchall()
        articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    assert articles == ARTICLES
    assert len(rows) == 2 * ARTICLES and {s for _, _, s in rows} == {"sent"}
    by_channel = {c: {i for i, ch, _ in rows if ch == c} for c in ("hook-a", "hook-b")}
    assert site.unique("/a") == by_channel["hook-a"]  # every article, every channel
    assert site.unique("/b") == by_channel["hook-b"]
    assert site.bad_signatures == 0
    # A kill can only repeat what was in flight: at most one delivery per channel
    # (each channel sends in order; channels send side by side).
    for path in ("/a", "/b"):
        counts = Counter(i for p, i in site.received if p == path)
        repeats = sum(n - 1 for n in counts.values())
        assert repeats <= kills, f"{path}: {repeats} repeats for {kills} kills"


def test_two_processes_on_one_database_send_each_delivery_once(
        tmp_path: Path, site: Receiver) -> None:
    """Two `watcher run --once` side by side: claims in the database keep them apart."""
    cfg = {
        "database": "state/watcher.db", "rules": "rules.yaml",
        "feeds": [{"name": "crash-feed", "url": site.url("/feed.xml"), "allow_private": True}],
        "channels": {"hook-a": {"type": "webhook", "url": site.url("/a"), "secret": SECRET},
                     "hook-b": {"type": "webhook", "url": site.url("/b")}},
        "fetch": {"fetch_pages": False},
        "delivery": {"batch": 10},
    }
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "tactical-missile", "any": ["tactical missile"],
         "notify": ["hook-a", "hook-b"]}]}))
    # `watcher run --once` stores the articles and their deliveries (the receiver is
    # down, so all of them wait); then two processes dispatch side by side. (The daemon
    # itself refuses to share a database; the dispatchers must still be safe to.)
    args = [sys.executable, "-m", "watcher", "run", "--once", "--config",
            str(tmp_path / "watcher.yaml")]
    site.down = True
    assert subprocess.run(args, cwd=ROOT, capture_output=True).returncode == 0
    site.down = False
    assert site.received == []
    procs = [subprocess.Popen([sys.executable, "-c", DISPATCH_SCRIPT,
                               str(tmp_path / "watcher.yaml")], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    sent = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        sent.append(int(out.decode().split()[-1]))
    ids = [i for _, i in site.received]
    assert len(ids) == 2 * ARTICLES and len(set(ids)) == 2 * ARTICLES
    assert sum(sent) == 2 * ARTICLES and min(sent) > 0  # both took part
    assert all_sent(tmp_path / "state" / "watcher.db")


DISPATCH_SCRIPT = """
import asyncio, sys
from datetime import UTC, datetime
from watcher.delivery.channels import build_channels
from watcher.delivery.dispatch import Dispatcher
from watcher.settings import load_settings
from watcher.store.sqlite import SqliteStore as Store

async def main():
    settings = load_settings(sys.argv[1])
    channels = build_channels(settings.channels)
    d = Dispatcher(Store(settings.database), channels, lambda: datetime.now(UTC),
                   limit=5, backoff=(0.1,))
    report = await d.dispatch_due(ignore_schedule=True)
    for ch in channels.values():
        await ch.aclose()
    print("sent", report.sent)

asyncio.run(main())
"""
