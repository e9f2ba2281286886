"""Never stall: a feed's slow or hanging pages, a feed of thousands of entries, pages
that take trafilatura minutes, and ten thousand rules, each beside a feed that must
keep alerting. The real daemon against real loopback servers."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT
from tests.servers import LoopbackServer, Request, Response, WebhookReceiver, wait_for
from tests.test_lifecycle import FEED, ITEM, get


class Log:
    """A process's stderr, line by line, with when each line arrived."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        assert proc.stderr is not None
        self._t = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._t.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append((time.monotonic(), line))

    def text(self) -> str:
        return "".join(line for _, line in self.lines)

    def times(self, pattern: str) -> list[float]:
        return [t for t, line in self.lines if re.search(pattern, line)]


def rss(items: list[tuple[str, str, str]], summary: str | None = None) -> Response:
    body = "".join(ITEM.format(g=g, t=t, link=link) for g, t, link in items)
    return 200, {"Content-Type": "application/rss+xml"}, FEED.format(items=body).encode()


def start(tmp: Path, feeds: list[dict[str, Any]], rules: list[dict[str, Any]],
          receiver: WebhookReceiver, **settings: Any) -> tuple[subprocess.Popen[str], Log]:
    cfg = {"database": "w.db", "rules": "rules.yaml", "feeds": feeds,
           "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
           "poll": {"tick": "1s", "min_interval": "1s"}, **settings}
    (tmp / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"rules": rules}))
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config",
                             str(tmp / "watcher.yaml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    return proc, Log(proc)


def stop(proc: subprocess.Popen[str], log: Log, within: float = 30) -> None:
    """SIGTERM, and the daemon is gone within its grace period."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError("the daemon did not stop on SIGTERM:\n" + log.text()) from None
    log._t.join(timeout=5)


def titles(receiver: WebhookReceiver, rule: str | None = None) -> list[str]:
    return [r.json()["article"]["title"] for r in receiver.accepted
            if rule is None or r.json()["rule"] == rule]


def quick_feed(server: LoopbackServer, *titles_: str) -> None:
    server.routes["/quick.xml"] = rss([(f"q{i}", t, "") for i, t in enumerate(titles_)])


def test_hanging_pages_hold_back_neither_their_feed_nor_another(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    release = threading.Event()

    def hang(req: Request) -> Response:
        release.wait(60)  # a page that never answers, until the test ends
        return 200, {"Content-Type": "text/html"}, b"<html><body><p>late</p></body></html>"

    def late(req: Request) -> Response:
        time.sleep(4)  # longer than page_wait: the article is stored first, improved later
        return 200, {"Content-Type": "text/html"}, (
            b"<html><body><article><p>" + b"Crews fought the wildfire through the night. " * 12
            + b"</p></article></body></html>")

    base = server.url("")
    server.routes["/hang.xml"] = rss([(f"h{i}", f"Hanging missile story {i}",
                                       f"{base}/hang/{i}") for i in range(6)])
    for i in range(6):
        server.routes[f"/hang/{i}"] = hang
    # Another site (the hanging one keeps its own pages' slots busy, politely).
    other = LoopbackServer(host="127.0.0.2")
    other.routes["/late.xml"] = rss([("l1", "Late missile story", other.url("/late"))])
    other.routes["/late"] = late
    quick_feed(server, "Calm story")
    feeds = [{"name": n, "url": f"{host}/{n}.xml", "allow_private": True, "interval": "1s",
              "min_interval": "1s"}
             for n, host in (("hang", base), ("late", other.url("")), ("quick", base))]
    rules = [{"name": "missile", "query": "missile", "notify": ["hook"]},
             {"name": "wildfire", "query": "wildfire", "notify": ["hook"]}]
    proc, log = start(tmp_path, feeds, rules, receiver, fetch={"page_wait": "2s"})
    try:
        # The hanging feed's stories alert from the feed's own text after page_wait.
        assert wait_for(lambda: len([t for t in titles(receiver) if "Hanging" in t]) == 6,
                        timeout=30), log.text()
        # Another feed's new item alerts at its next polls, while those pages still hang.
        added = time.monotonic()
        quick_feed(server, "Calm story", "Quick missile story")
        assert wait_for(lambda: "Quick missile story" in titles(receiver), timeout=15), log.text()
        assert not release.is_set()
        # The late page came after its article was stored: it is matched again, and the
        # rule its text newly matches alerts (the one that matched already does not).
        assert wait_for(lambda: titles(receiver, "wildfire") == ["Late missile story"],
                        timeout=30), log.text()
        assert titles(receiver, "missile").count("Late missile story") == 1
        wildfire = next(r.json() for r in receiver.accepted if r.json()["rule"] == "wildfire")
        assert wildfire["article"]["text_source"] == "page"
        quick_seen = log.times(r"match: rule 'missile' fired on 'Quick missile story'")
        assert quick_seen and quick_seen[0] - added < 10, log.text()  # ticks, not minutes
    finally:
        stop(proc, log)  # while six pages still hang
        release.set()
        server.close()
        other.close()
    assert proc.returncode == 0, log.text()
    with sqlite3.connect(tmp_path / "w.db") as db:
        pending = db.execute("SELECT count(*) FROM articles WHERE page_pending = 1").fetchone()
    assert pending[0] == 6  # still to come: fetched again after a restart


def test_a_feed_of_thousands_fetches_a_capped_number_of_pages_per_poll(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    server = LoopbackServer()  # unknown paths answer 404 at once
    base = server.url("")
    server.routes["/big.xml"] = rss([(f"b{i}", f"Big feed item {i}", f"{base}/p/{i}")
                                     for i in range(3000)])
    quick_feed(server, "Calm story")
    feeds = [{"name": "big", "url": f"{base}/big.xml", "allow_private": True,
              "interval": "1h"},
             {"name": "quick", "url": f"{base}/quick.xml", "allow_private": True,
              "interval": "1s", "min_interval": "1s"}]
    proc, log = start(tmp_path, feeds, [{"name": "missile", "query": "missile",
                                         "notify": ["hook"]}],
                      receiver, fetch={"max_pages_per_poll": 40})
    try:
        assert wait_for(lambda: "ingest: feed 'big': 3000 entries, 3000 new" in log.text(),
                        timeout=60), log.text()
        quick_feed(server, "Calm story", "Quick missile story")
        assert wait_for(lambda: "Quick missile story" in titles(receiver), timeout=15), log.text()
    finally:
        stop(proc, log)
        server.close()
    pages = [r for r in server.requests if r.path.startswith("/p/")]
    assert len(pages) == 40, len(pages)  # one poll of the big feed: its cap
    # The newest entries' pages first (the feed lists them first).
    assert {r.path for r in pages} == {f"/p/{i}" for i in range(40)}
    with sqlite3.connect(tmp_path / "w.db") as db:
        stored, pending = db.execute(
            "SELECT count(*), sum(page_pending) FROM articles WHERE feed = 'big'").fetchone()
    assert stored == 3000 and pending == 2960


# A page extraction takes far longer than the test's time limit over: 40,000 short
# paragraphs of an article, each with a link.
SLOW_PAGE = (b"<html><body><article>" + b'<p>probe word <a href="/x">link text here</a> more '
             b"text and a longer sentence with many words in it to be a paragraph</p>\n" * 40000
             + b"</article></body></html>")


CUT = r"extract: .* took longer than .*; worker stopped"


def test_pages_that_take_minutes_are_cut_off_side_by_side(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    base = server.url("")
    server.routes["/slow.xml"] = rss([(f"s{i}", f"Slow missile story {i}", f"{base}/s/{i}")
                                      for i in range(7)])
    for i in range(7):
        server.routes[f"/s/{i}"] = (200, {"Content-Type": "text/html"}, SLOW_PAGE)
    quick_feed(server, "Calm story")
    feeds = [{"name": "slow", "url": f"{base}/slow.xml", "allow_private": True,
              "interval": "1h"},
             {"name": "quick", "url": f"{base}/quick.xml", "allow_private": True,
              "interval": "1s", "min_interval": "1s"}]
    timeout = 4.0
    proc, log = start(tmp_path, feeds, [{"name": "missile", "query": "missile",
                                         "notify": ["hook"]}], receiver,
                      fetch={"page_wait": "2s", "extract_timeout": f"{timeout}s",
                             "extract_workers": 2, "extract_max_workers": 8},
                      metrics={"listen": "127.0.0.1:0"})
    try:
        assert wait_for(lambda: len([t for t in titles(receiver) if "Slow" in t]) == 7,
                        timeout=30), log.text()
        port = int(re.search(r"metrics: serving .* on 127\.0\.0\.1:(\d+)", log.text())[1])
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        quick_feed(server, "Calm story", "Quick missile story")
        assert wait_for(lambda: "Quick missile story" in titles(receiver), timeout=15), log.text()
        assert wait_for(lambda: len(log.times(CUT)) == 7, timeout=90), log.text()
    finally:
        stop(proc, log)
        server.close()
    assert proc.returncode == 0, log.text()
    cut = log.times(CUT)
    assert len(cut) == 7, log.text()  # each page once
    # Side by side (one feed may take half the workers: two rounds), not one after
    # another (seven rounds of `timeout`).
    assert max(cut) - min(cut) < 3 * timeout, log.text()


def test_ten_thousand_rules_keep_deliveries_and_health_flowing(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    base = server.url("")
    # Each story names eight terms, each term a rule of its own: thousands of alerts.
    terms = [{(i * 37 + k * 1249) % 10000 for k in range(8)} for i in range(300)]
    server.routes["/big.xml"] = rss([(f"b{i}", f"Story {i} about " + " ".join(
        f"term{n}" for n in sorted(ts)), "") for i, ts in enumerate(terms)])
    rules = [{"name": f"r{i}", "query": f"term{i}", "notify": ["hook"]} for i in range(10000)]
    expected = sum(len(ts) for ts in terms)
    feeds = [{"name": "big", "url": f"{base}/big.xml", "allow_private": True,
              "interval": "1h"}]
    proc, log = start(tmp_path, feeds, rules, receiver, fetch={"fetch_pages": False},
                      metrics={"listen": "127.0.0.1:0"})
    health: list[tuple[int, float]] = []
    try:
        assert wait_for(lambda: "metrics: serving" in log.text(), timeout=120), log.text()
        port = int(re.search(r"metrics: serving .* on 127\.0\.0\.1:(\d+)", log.text())[1])
        deadline = time.monotonic() + 120
        while len(receiver.accepted) < expected and time.monotonic() < deadline:
            asked = time.monotonic()
            status, _ = get(f"http://127.0.0.1:{port}/healthz")
            health.append((status, time.monotonic() - asked))
            time.sleep(0.05)
    finally:
        stop(proc, log)
        server.close()
    assert len(receiver.accepted) == expected, log.text()[-3000:]
    assert health and all(status == 200 for status, _ in health), health
    assert max(took for _, took in health) < 0.5, max(took for _, took in health)  # never held
    ingested = log.times(r"ingest: feed 'big': 300 entries")
    first_sent = log.times(r"deliver: .* sent to 'hook'")
    assert ingested and first_sent and first_sent[0] - ingested[0] < 10, log.text()[-3000:]
