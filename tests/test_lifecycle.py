"""The daemon as a service: /healthz and /metrics, SIGHUP reload, SIGTERM mid-fetch."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from tests.conftest import ROOT
from tests.servers import LoopbackServer, Request, Response, WebhookReceiver, wait_for

FEED = ('<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}'
        "</channel></rss>")
ITEM = ("<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
        "<description>{t}</description></item>")


class Output:
    """Collects a process's stderr lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._t = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._t.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_health_sighup_and_sigterm_during_a_slow_fetch(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    server = LoopbackServer()
    slow_started = threading.Event()

    def slow_page(req: Request) -> Response:
        slow_started.set()
        time.sleep(3)
        return 200, {"Content-Type": "text/html"}, (
            b"<html><body><article><p>" + b"A tactical missile was shown today. " * 20
            + b"</p></article></body></html>")

    base = server.url("")
    server.routes["/one.xml"] = (200, {"Content-Type": "application/rss+xml"}, FEED.format(
        items=ITEM.format(g="a1", t="First tactical missile story", link=f"{base}/a1.html")
    ).encode())
    server.routes["/a1.html"] = (200, {"Content-Type": "text/html"},
                                 b"<html><body><p>A tactical missile story.</p></body></html>")
    server.routes["/two.xml"] = (200, {"Content-Type": "application/rss+xml"}, FEED.format(
        items=ITEM.format(g="b1", t="Slow page story", link=f"{base}/slow.html")).encode())
    server.routes["/slow.html"] = slow_page

    cfg = {"database": "w.db", "rules": "rules.yaml",
           "feeds": [{"name": "one", "url": f"{base}/one.xml", "allow_private": True}],
           "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
           "metrics": {"listen": "127.0.0.1:0"}, "poll": {"tick": "1s"}}
    cfg_path = tmp_path / "watcher.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "tactical-missile", "query": '"tactical missile"', "notify": ["hook"]}]}))

    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(cfg_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    out = Output(proc)
    try:
        assert wait_for(lambda: "metrics: serving" in out.text(), timeout=30), out.text()
        port = int(re.search(r"metrics: serving .* on 127\.0\.0\.1:(\d+)", out.text())[1])
        assert wait_for(lambda: len(receiver.accepted) >= 1, timeout=30), out.text()

        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert (status, body.strip()) == (200, "ok")
        status, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert 'watcher_fetches_total{outcome="ok"}' in metrics
        assert "watcher_articles_stored_total 1.0" in metrics
        assert 'watcher_matches_total{rule="tactical-missile"} 1.0' in metrics
        assert 'watcher_deliveries_total{channel="hook",status="sent"} 1.0' in metrics
        assert 'watcher_feeds{state="healthy"} 1.0' in metrics
        assert "watcher_outbox_backlog 0.0" in metrics
        assert "watcher_fetch_duration_seconds_bucket" in metrics
        assert get(f"http://127.0.0.1:{port}/nope")[0] == 404

        # A broken config on SIGHUP is refused and the old one stays.
        cfg_path.write_text("feeds: [unclosed\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload of" in out.text() and "refused" in out.text(),
                        timeout=15), out.text()
        # A good one adds the second feed, whose page is slow.
        cfg["feeds"].append({"name": "two", "url": f"{base}/two.xml", "allow_private": True})
        cfg_path.write_text(yaml.safe_dump(cfg))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "config: reloaded" in out.text(), timeout=15), out.text()
        assert slow_started.wait(timeout=30), out.text()

        # SIGTERM while that page is still being fetched: it finishes, nothing is lost.
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    out._t.join(timeout=5)
    log = out.text()
    assert proc.returncode == 0, log
    assert "daemon: stopping" in log and "daemon: stopped" in log
    titles = [r.json()["article"]["title"] for r in receiver.accepted]
    assert titles == ["First tactical missile story", "Slow page story"], log
