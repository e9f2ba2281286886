"""Poll-to-alert beside feeds that stall: the 100-feed corpus, with and without a feed
whose pages never answer and a feed whose pages take extraction past its limit.

    python -m benchmarks.stalls --feeds 100 --items 20 --runs 5 --pairs 3

One cold cycle primes a database. Then the daemon runs on it, alternately clean and
with the two stalling feeds beside the corpus (both on 127.0.0.2, another "site"),
and each run publishes `--runs` new items into random corpus feeds and times each
from the server's first answer carrying it to its line in the alerts file. Pairs are
alternated because the machine's speed drifts over minutes; medians are reported.
Target: the stalled median within one tick (1 s) of the clean one.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmarks.corpus import CorpusSpec, feed_names
from benchmarks.e2e import RULES_YAML, measure_latency, watcher_once, write_config
from benchmarks.server import CorpusServer

TICK_S = 1.0
# A page extraction takes many seconds over (tests/test_stalls.py uses the same shape).
SLOW_PAGE = (b"<html><body><article>" + b'<p>probe word <a href="/x">link text here</a> more '
             b"text and a longer sentence with many words in it to be a paragraph</p>\n" * 40000
             + b"</article></body></html>")


class StallServer:
    """On 127.0.0.2: /hang.xml (pages that never answer) and /slow.xml (pages that take
    extraction long), each gaining a new item every `every_s` seconds."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.started = time.monotonic()
        self.every_s = every_s
        self.closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                kind, _, rest = self.path.strip("/").partition("/")
                if rest:  # a page
                    if kind == "hang":
                        owner.closing.wait(600)
                        return
                    self._answer("text/html", SLOW_PAGE)
                    return
                self._answer("application/rss+xml", owner.feed(kind.removesuffix(".xml")))

            def _answer(self, ctype: str, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.2", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.2:{self.httpd.server_address[1]}"

    def feed(self, kind: str) -> bytes:
        newest = 6 + int((time.monotonic() - self.started) / self.every_s)
        items = "".join(
            f"<item><guid>{kind}-{i}</guid><title>{kind} story {i}</title>"
            f"<link>{self.base}/{kind}/{i}</link><description>{kind} story {i}"
            f"</description></item>" for i in range(newest, -1, -1))
        return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{kind}</title>'
                f"{items}</channel></rss>").encode()

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def with_stalls(src: Path, dst: Path, stall: StallServer) -> None:
    """A copy of a primed run folder whose config adds the two stalling feeds."""
    shutil.copytree(src, dst)
    text = (dst / "watcher.yaml").read_text()
    extra = "".join(
        f'  - {{name: stall-{k}, url: "{stall.base}/{k}.xml", interval: 1s, '
        f"min_interval: 1s, adaptive: false, allow_private: true}}\n" for k in ("hang", "slow"))
    (dst / "watcher.yaml").write_text(text.replace("channels:\n", extra + "channels:\n", 1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--feeds", type=int, default=100)
    ap.add_argument("--items", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5, help="items published per daemon run")
    ap.add_argument("--pairs", type=int, default=3, help="clean/stalled run pairs")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    spec = CorpusSpec(seed=args.seed, feeds=args.feeds, items=args.items, target_share=0.1,
                      pages=True)
    names = feed_names(spec)
    work = Path(tempfile.mkdtemp(prefix="watcher-stalls-"))
    (work / "rules.yaml").write_text(RULES_YAML)
    server = CorpusServer(spec)
    stall = StallServer()
    clean: list[float] = []
    stalled: list[float] = []
    try:
        primed = work / "primed"
        primed.mkdir()
        write_config(primed / "watcher.yaml", server, names, concurrency=16, per_host=16,
                     fetch_timeout_s=None)
        watcher_once(primed, 1800, server)
        print(f"primed {primed}", flush=True)
        for i in range(args.pairs):
            for tag, bucket in (("clean", clean), ("stalled", stalled)):
                run = work / f"{tag}{i}"
                if tag == "clean":
                    shutil.copytree(primed, run)
                else:
                    with_stalls(primed, run, stall)
                p2a, _, mb = measure_latency(run, server, names, args.runs,
                                             args.seed + i, timeout_s=120)
                bucket.extend(p2a)
                print(f"{tag} {i + 1}: poll-to-alert " + ", ".join(f"{x:.3f}" for x in p2a)
                      + f" (peak {mb:.0f} MB)", flush=True)
    finally:
        stall.close()
        server.close()
    c, s = statistics.median(clean), statistics.median(stalled)
    print(f"\n| figure | clean | with stalling feeds | target |\n|---|---|---|---|\n"
          f"| poll-to-alert, median of {len(clean)} | {c:.3f} s | {s:.3f} s | "
          f"stalled <= clean + {TICK_S:g} s: {'PASS' if s <= c + TICK_S else 'FAIL'} |\n"
          f"| poll-to-alert, worst | {max(clean):.3f} s | {max(stalled):.3f} s | |")
    print(f"work folder: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
