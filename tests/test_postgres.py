"""Several daemons sharing one PostgreSQL (a real cluster, tests/pg.py): each feed
polled once per due time, each alert sent once, a dead daemon's work taken over."""

from __future__ import annotations

import collections
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer, Request, Response, WebhookReceiver, wait_for

ITEM = ("<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
        "<description>{d}</description>{extra}</item>")


def corpus(server: LoopbackServer, feeds: int, items: int, delay_s: float = 0.0) -> None:
    """Feeds /f/<n>.xml of `items` items; the first item of each names a missile."""
    def answer(req: Request) -> Response:
        n = int(re.search(r"/f/(\d+)\.xml", req.path)[1])  # type: ignore[index]
        time.sleep(delay_s)
        body = "".join(ITEM.format(g=f"f{n}-{k}", t=f"Feed {n} item {k}" + (
            " missile" if k == 0 else ""), link="", d="text", extra="") for k in range(items))
        return 200, {"Content-Type": "application/rss+xml"}, (
            f'<?xml version="1.0"?><rss version="2.0"><channel><title>f{n}</title>{body}'
            "</channel></rss>").encode()
    for n in range(feeds):
        server.routes[f"/f/{n}.xml"] = answer


def config(tmp: Path, url: str, server: LoopbackServer, receiver: WebhookReceiver,
           feeds: list[str], **extra: Any) -> Path:
    cfg = {"database": url, "rules": str(tmp / "rules.yaml"),
           "feeds": [{"name": f, "url": server.url(path), "allow_private": True,
                      "interval": "1h"} for f, path in feeds],
           "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
           "poll": {"tick": "1s", "lease": "4s"}, "delivery": {"tick": "1s", "lease": "4s"},
           "fetch": {"fetch_pages": False}, **extra}
    path = tmp / f"watcher-{abs(hash(url)) % 10**6}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "missile", "query": "missile", "notify": ["hook"]}]}))
    return path


def daemon(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg)],
                            cwd=ROOT, stdout=out, stderr=out)


def stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def feed_requests(server: LoopbackServer) -> collections.Counter[str]:
    return collections.Counter(r.path for r in server.requests if r.path.startswith("/f/"))


def hook_ids(receiver: WebhookReceiver) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.accepted]


def test_three_daemons_share_the_feeds_and_take_over_a_dead_ones_work(
        tmp_path: Path, pg_server: str, receiver: WebhookReceiver) -> None:
    from tests.pg import new_database

    shared, alone = new_database(pg_server), new_database(pg_server)
    server = LoopbackServer()
    corpus(server, 200, 10, delay_s=0.05)
    feeds = [(f"f{n}", f"/f/{n}.xml") for n in range(200)]
    cfg = config(tmp_path, shared, server, receiver, feeds)
    procs = [daemon(cfg, tmp_path / f"d{i}.log") for i in range(3)]
    try:
        assert wait_for(lambda: sum(feed_requests(server).values()) >= 40, timeout=60), \
            (tmp_path / "d0.log").read_text()[-3000:]
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        with psycopg.connect(shared) as conn:
            owner = conn.execute("SELECT id FROM daemons WHERE pid = %s",
                                 [victim.pid]).fetchone()
            assert owner is not None
            orphaned = {r[0] for r in conn.execute(
                "SELECT name FROM feeds WHERE lease_owner = %s", [owner[0]]).fetchall()}
        assert wait_for(lambda: len(set(hook_ids(receiver))) >= 200, timeout=90), \
            (tmp_path / "d1.log").read_text()[-3000:]
        status = run_watcher("status", "--json", "--config", str(cfg))
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        live = {d["pid"] for d in report["daemons"]}
        # the killed one stays listed until its heartbeat is a minute old
        assert {procs[1].pid, procs[2].pid} <= live <= {p.pid for p in procs}
        assert report["rules_differ"] is False and report["config_differs"] is False
        time.sleep(5)  # past every lease: nothing more may arrive
        with psycopg.connect(shared) as conn:
            held = conn.execute("SELECT count(*) FROM feeds WHERE lease_owner = %s AND "
                                "lease_until > now()", [owner[0]]).fetchone()
            claims = conn.execute("SELECT count(*) FROM deliveries WHERE claimed_by = %s "
                                  "AND claimed_until > now()", [owner[0]]).fetchone()
            articles = conn.execute("SELECT count(*), count(DISTINCT (feed, entry_id)) "
                                    "FROM articles").fetchone()
    finally:
        stop(*procs)
    counts = feed_requests(server)
    assert set(counts) == {path for _, path in feeds}  # every feed polled
    # Once per due time; a feed the killed daemon held may have been fetched by it and
    # again by the one that took it over (work fetched but not stored is redone).
    assert all(counts[f"/f/{n}.xml"] == 1 for n in range(200)
               if f"f{n}" not in orphaned), (counts, orphaned)
    assert all(counts[f"/f/{n[1:]}.xml"] <= 2 for n in orphaned)
    assert held == (0,) and claims == (0,)
    assert articles == (2000, 2000)
    # The work was shared, not claimed whole by the first daemon to tick.
    polled_by = [len(re.findall(r"ingest: feed 'f\d+': \d+ entries",
                                (tmp_path / f"d{i}.log").read_text())) for i in (1, 2)]
    assert min(polled_by) >= 20, polled_by
    ids = hook_ids(receiver)
    # The same alerts as one daemon alone makes from the same corpus.
    single = WebhookReceiver()
    try:
        result = run_watcher("run", "--once", "--config",
                             str(config(tmp_path, alone, server, single, feeds)))
        assert result.returncode == 0, result.stderr[-2000:]
        assert set(ids) == set(hook_ids(single)) and len(set(ids)) == 200
    finally:
        single.close()
        server.close()


def test_five_copies_of_one_story_polled_by_three_daemons_at_once_alert_once(
        tmp_path: Path, pg_url: str, receiver: WebhookReceiver) -> None:
    from tests.stories import WIRE

    server = LoopbackServer()
    text = " ".join(WIRE)
    for n in range(5):
        body = ITEM.format(g=f"copy-{n}", t=f"Copy {n}: Kim inspects new tactical missile",
                           link=server.url(f"/paper{n}/kim"), d="A missile story.",
                           extra=f"<content:encoded><![CDATA[<p>{text}</p>]]></content:encoded>")
        server.routes[f"/f{n}.xml"] = (200, {"Content-Type": "application/rss+xml"}, (
            '<?xml version="1.0"?><rss version="2.0" xmlns:content="http://purl.org/rss/1.0/'
            f'modules/content/"><channel><title>p{n}</title>{body}</channel></rss>').encode())
    cfg = config(tmp_path, pg_url, server, receiver,
                 [(f"p{n}", f"/f{n}.xml") for n in range(5)])
    barrier = threading.Barrier(3)
    procs: list[subprocess.Popen[bytes]] = []

    def start(i: int) -> None:
        barrier.wait()
        procs.append(daemon(cfg, tmp_path / f"r{i}.log"))
    threads = [threading.Thread(target=start, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert wait_for(lambda: len(feed_requests_plain(server)) == 5, timeout=60)
        assert wait_for(lambda: len(receiver.accepted) >= 1, timeout=30)
        time.sleep(3)  # any second alert would be out by now
        with psycopg.connect(pg_url) as conn:
            stories = conn.execute("SELECT count(DISTINCT story_id), count(*) "
                                   "FROM articles").fetchone()
            sources = conn.execute("SELECT count(*) FROM article_sources").fetchone()
    finally:
        stop(*procs)
        server.close()
    assert stories == (1, 5) and sources == (5,)
    assert len(receiver.accepted) == 1


def feed_requests_plain(server: LoopbackServer) -> set[str]:
    return {r.path for r in server.requests if r.path.endswith(".xml")}


def test_an_unreachable_database_is_a_clear_error_at_start(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    try:
        cfg = config(tmp_path, "postgresql://watcher@127.0.0.1:1/watcher", server, receiver,
                     [])
        result = run_watcher("run", "--once", "--config", str(cfg))
    finally:
        server.close()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "database postgresql://127.0.0.1:1/watcher: cannot connect" in result.stderr


@pytest.mark.parametrize("kind", ["dropped connections", "database refusing connections"])
def test_a_lost_database_while_running_loses_nothing(
        tmp_path: Path, pg_server: str, receiver: WebhookReceiver, kind: str) -> None:
    from tests.pg import new_database

    url = new_database(pg_server)
    name = url.rpartition("/")[2]
    server = LoopbackServer()
    corpus(server, 40, 50)
    cfg = config(tmp_path, url, server, receiver, [(f"f{n}", f"/f/{n}.xml") for n in range(40)])
    proc = daemon(cfg, tmp_path / "d.log")
    stop_event = threading.Event()

    def disrupt() -> None:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            if kind != "dropped connections":
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            while not stop_event.is_set():
                admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = %s AND pid <> pg_backend_pid()", [name])
                time.sleep(0.05)
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    try:
        assert wait_for(lambda: sum(feed_requests(server).values()) >= 1, timeout=60)
        thread = threading.Thread(target=disrupt)
        thread.start()
        time.sleep(4)
        stop_event.set()
        thread.join()
        assert proc.poll() is None, (tmp_path / "d.log").read_text()[-3000:]
        assert wait_for(lambda: len(set(hook_ids(receiver))) == 40, timeout=90), \
            (tmp_path / "d.log").read_text()[-3000:]
        with psycopg.connect(url) as conn:
            articles = conn.execute("SELECT count(*), count(DISTINCT (feed, entry_id)) "
                                    "FROM articles").fetchone()
    finally:
        stop_event.set()
        stop(proc)
        server.close()
    log = (tmp_path / "d.log").read_text()
    assert articles == (2000, 2000)
    # (an alert sent just before its connection was cut may go again: same webhook-id)
    assert "Traceback" not in log
    assert log.count("polling paused") <= 3, log[-3000:]  # per state change, not per try
