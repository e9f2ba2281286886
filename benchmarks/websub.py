"""WebSub push to alert: how long from a hub's push to the alert in a channel.

    python -m benchmarks.websub [--pushes 20]

Starts a loopback hub and feed (tests.test_websub.Hub), then `watcher run` as its own
process with a jsonl channel, page fetching on (the pushed entries' pages are served
by the same loopback server) and a rule every pushed story matches. Once the hub has
verified the subscription, it pushes one new story at a time, signed, and measures
from just before the POST until the alert's line is in the jsonl file (checked
every millisecond). Prints the median and the worst.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tests.servers import LoopbackServer, wait_for
from tests.test_websub import Hub, free_port, rss

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("harbour", "council", "budget", "ferry", "strike", "rail", "tender", "school",
         "election", "court", "appeal", "storm", "flood", "bridge", "hospital", "nurses",
         "wages", "port", "tariff", "grain", "fishing", "quota", "wind", "farm", "tunnel",
         "museum", "festival", "airport", "runway", "police", "inquiry", "minister")


def page(title: str, seed: int) -> bytes:
    """An article of its own words: every story is a story of its own, not a copy."""
    rng = random.Random(seed)
    text = " ".join(rng.choice(WORDS) for _ in range(300))
    return (f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
            f"<p>The army showed a tactical missile. {text}</p></article></body></html>"
            ).encode()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--log", default="/tmp/watcher-websub-bench.log", help="the daemon's log")
    args = ap.parse_args()
    server = LoopbackServer()
    hub = Hub(server, lease=86400)
    me, hub_url = server.url("/feed.xml"), server.url("/hub")
    server.routes["/feed.xml"] = (200, {"Content-Type": "application/rss+xml"},
                                  rss([("0", "A quiet day")], hub_url, me))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "watcher.yaml").write_text(yaml.safe_dump({
            "database": "w.db", "rules": "rules.yaml",
            "feeds": [{"name": "pushed", "url": me, "allow_private": True}],
            "channels": {"file": {"type": "jsonl", "path": "alerts.jsonl"}},
            "web": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}}))
        (tmp / "rules.yaml").write_text(yaml.safe_dump({"rules": [
            {"name": "missile", "any": ["tactical missile"], "notify": ["file"]}]}))
        alerts = tmp / "alerts.jsonl"
        log = Path(args.log)
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config",
                                 str(tmp / "watcher.yaml")], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=log.open("w"))
        try:
            if not wait_for(lambda: ("subscribe", True) in hub.verified, timeout=60):
                raise SystemExit("the daemon never subscribed")
            secret = hub.requests[0]["hub.secret"]
            times = []
            for i in range(1, args.pushes + 1):
                title = f"Tactical missile story {i}"
                server.routes[f"/story/{i}"] = (200, {"Content-Type": "text/html"},
                                                page(title, i))
                body = rss([(str(i), title)], hub_url, me)
                started = time.perf_counter()
                status = hub.push(body, secret)
                assert status == 202, status
                while not (alerts.exists() and alerts.read_text().count("\n") >= i):
                    if time.perf_counter() - started > 30:
                        raise SystemExit(f"push {i}: no alert in 30 s; see {log}")
                    time.sleep(0.001)
                times.append(time.perf_counter() - started)
                time.sleep(0.2)
            titles = [json.loads(x)["title"] for x in alerts.read_text().splitlines()]
            assert len(titles) == args.pushes, titles
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            server.close()
    print(f"{args.pushes} pushes: push to alert {statistics.median(times) * 1000:.0f} ms "
          f"median, {max(times) * 1000:.0f} ms worst, {min(times) * 1000:.0f} ms best")


if __name__ == "__main__":
    main()
