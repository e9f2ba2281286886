"""A poll cycle against loopback servers that misbehave on purpose.

Each bad feed must get the right outcome (recorded on its own row) in bounded
time and memory, and the good feed in the same cycle must still alert.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import yaml

from tests.conftest import ROOT, run_watcher
from tests.servers import LoopbackServer, Request, Response, WebhookReceiver
from tests.test_e2e import SEED_TITLE
from watcher.core.models import Feed
from watcher.fetch.client import Fetcher

LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
          + b"".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">\n'.encode()
                     .replace(b"&lol0;", b"&lol;") for i in range(1, 10))
          + b']>\n<rss version="2.0"><channel><title>&lol9;</title></channel></rss>')
QUADRATIC = (b'<?xml version="1.0"?>\n<!DOCTYPE q [<!ENTITY a "' + b"a" * 50_000 + b'">]>\n'
             b'<rss version="2.0"><channel><title>q</title><item><description>'
             + b"&a;" * 50_000 + b"</description></item></channel></rss>")


def rss(items: list[tuple[str, str, str]], ttl: int | None = None) -> bytes:
    """items: (guid, title, link)."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
        f"<description>{t}: a tactical missile was shown.</description></item>"
        for g, t, link in items)
    ttl_el = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>t</title>{ttl_el}{body}</channel></rss>").encode()


def gzip_bomb(megabytes: int) -> bytes:
    """A small gzip body that inflates to `megabytes` MB, built without holding it."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * 1_000_000
    return b"".join(z.compress(block) for _ in range(megabytes)) + z.flush()


def endless(chunk: bytes = b"x" * 65536, limit: int = 1_000_000_000) -> Iterator[bytes]:
    sent = 0
    while sent < limit:  # a 1 GB body, produced lazily; the client must hang up first
        yield chunk
        sent += len(chunk)


def trickle(n: int = 60) -> Iterator[bytes]:
    for _ in range(n):
        yield b"<"
        time.sleep(1)


def test_misbehaving_feeds_cost_only_themselves(
        tmp_path: Path, seed_server: LoopbackServer, receiver: WebhookReceiver) -> None:
    s = seed_server
    base = s.url("")
    s.routes.update({
        "/huge-declared.xml": (200, {"Content-Length": str(10**9)}, endless()),
        "/huge-chunked.xml": (200, {"Content-Type": "application/rss+xml"}, endless()),
        "/bomb.xml": (200, {"Content-Encoding": "gzip"}, gzip_bomb(200)),
        "/trickle.xml": (200, {"Content-Type": "application/rss+xml"}, trickle()),
        "/laughs.xml": (200, {"Content-Type": "application/rss+xml"}, LAUGHS),
        "/quadratic.xml": (200, {"Content-Type": "application/rss+xml"}, QUADRATIC),
        "/loop-a.xml": (302, {"Location": "/loop-b.xml"}, b""),
        "/loop-b.xml": (302, {"Location": "/loop-a.xml"}, b""),
        "/gone.xml": (410, {}, b"gone"),
        "/busy.xml": (503, {"Retry-After": "120"}, b"busy"),
        "/limited.xml": (429, {"Retry-After": format_datetime(
            datetime.now(UTC) + timedelta(hours=1), usegmt=True)}, b"slow down"),
        "/old.xml": (301, {"Location": "/new.xml"}, b""),
        "/new.xml": (200, {"Content-Type": "application/rss+xml"},
                     rss([("m1", "Moved story", "/feeds/articles/nothing.html")])),
        "/ssrf.xml": (200, {"Content-Type": "application/rss+xml"}, rss([
            ("s1", "Named private", f"http://localhost:{s.port}/secret"),
            ("s2", "Metadata", "http://169.254.169.254/latest/meta-data/"),
            ("s3", "Mapped", f"http://[::ffff:127.0.0.1]:{s.port}/secret"),
            ("s4", "Local file", "file:///etc/passwd"),
            ("s5", "Same host", "/ok.html"),
        ])),
        "/ok.html": (200, {"Content-Type": "text/html"},
                     b"<html><body><article><p>" + b"Fine page text here. " * 40
                     + b"</p></article></body></html>"),
        "/secret": (200, {}, b"secret"),
        "/latin.xml": (200, {"Content-Type": "application/rss+xml; charset=utf-8"},
                       '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel>'
                       "<title>x</title><item><guid>l1</guid><title>Caf\xe9 cr\xe8me</title>"
                       "</item></channel></rss>".encode("latin-1")),
    })
    bad = ["huge-declared", "huge-chunked", "bomb", "trickle", "laughs", "quadratic",
           "loop-a", "gone", "busy", "limited"]
    feeds = [{"name": "demo-world", "url": s.url("/feeds/world.xml"), "allow_private": True}]
    feeds += [{"name": n, "url": f"{base}/{n}.xml", "allow_private": True}
              for n in [*bad, "old", "ssrf", "latin"]]
    cfg = {
        "database": "watcher.db", "rules": "rules.yaml", "feeds": feeds,
        "channels": {"hook": {"type": "webhook", "url": receiver.url("/hook")}},
        "fetch": {"timeout": "2s", "max_feed_bytes": "1MB", "max_page_bytes": "1MB"},
    }
    (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"rules": [
        {"name": "tactical-missile", "any": ["tactical missile"], "notify": ["hook"]}]}))

    # The child reports its own high-water mark (VmHWM of its post-exec memory):
    # rusage would also count the test process's pages from before the exec.
    hwm_file = tmp_path / "hwm.txt"
    wrapper = ("import sys; from watcher.cli import main; rc = main(sys.argv[2:]); "
               "open(sys.argv[1], 'w').write(next(line for line in open('/proc/self/status') "
               "if line.startswith('VmHWM'))); sys.exit(rc)")
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, str(hwm_file), "run", "--once", "--config",
         str(tmp_path / "watcher.yaml")], capture_output=True, text=True, cwd=ROOT, timeout=90)
    assert proc.returncode == 1, proc.stderr
    peak_kb = int(hwm_file.read_text().split()[1])
    # The caps hold: nothing near the 1 GB body or the 200 MB bomb is ever in memory.
    assert peak_kb < 350_000, f"peak RSS {peak_kb} KB"

    # The good feed alerted despite everything else.
    titles = {r.json()["article"]["title"] for r in receiver.accepted}
    assert SEED_TITLE in titles

    with sqlite3.connect(tmp_path / "watcher.db") as db:
        rows = {r[0]: r[1:] for r in db.execute(
            "SELECT name, last_error, consecutive_failures, gone_at, next_poll_at, url "
            "FROM feeds")}
        articles = {r[0]: r[1:] for r in db.execute(
            "SELECT entry_id, text_source, page_error, title FROM articles")}
    err = {n: (rows[n][0] or "") for n in rows}
    assert "declares 1000000000 bytes" in err["huge-declared"]
    assert "over the 1000000 byte cap" in err["huge-chunked"]
    assert "over the 1000000 byte cap" in err["bomb"]
    assert "no complete answer within 2s" in err["trickle"]
    assert "entities" in err["laughs"] and "entities" in err["quadratic"]
    assert "redirect loop" in err["loop-a"]
    assert rows["gone"][2] is not None and "410" in err["gone"]
    assert "answered 503" in err["busy"] and "answered 429" in err["limited"]
    now = datetime.now(UTC)
    busy_next = datetime.fromisoformat(rows["busy"][3].replace("Z", "+00:00"))
    limited_next = datetime.fromisoformat(rows["limited"][3].replace("Z", "+00:00"))
    assert busy_next >= now + timedelta(seconds=100)  # Retry-After: 120 (seconds form)
    assert limited_next >= now + timedelta(minutes=55)  # Retry-After: HTTP date, 1 h
    for n in bad:
        if n != "gone":
            assert rows[n][1] == 1, n
    # 301: the stored URL follows the move.
    assert rows["old"][4] == f"{base}/new.xml" and rows["old"][1] == 0
    # Links to private addresses, other hosts' loopback names and files are refused;
    # the articles are kept with the feed's own text.
    assert not [r for r in s.requests if r.path == "/secret"]
    for guid in ("s1", "s2", "s3", "s4"):
        source, page_error, _ = articles[guid]
        assert source == "feed-summary", guid
        assert page_error, guid
    assert "not public" in articles["s1"][1] and "not public" in articles["s2"][1]
    assert "not public" in articles["s3"][1]
    assert "local file is not allowed" in articles["s4"][1]
    assert articles["s5"][0] == "page"
    assert articles["l1"][2] == "Café crème"  # wrong declared charset, right text

    # A second cycle: gone and Retry-After-held feeds are left alone.
    s.requests.clear()
    again = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"),
                        timeout=90)
    asked = {r.path for r in s.requests}
    assert "/gone.xml" not in asked and "/busy.xml" not in asked
    assert "/limited.xml" not in asked and "/old.xml" not in asked
    assert "/new.xml" in asked
    assert again.returncode == 1  # the other bad feeds still fail


def test_restart_keeps_validators_and_gets_only_304s(tmp_path: Path) -> None:
    server = LoopbackServer()
    etag_body = rss([("e1", "ETag story", "/p.html")])
    lm_body = rss([("l1", "LM story", "/p.html")])
    lm = "Wed, 15 May 2024 03:12:00 GMT"

    def etag_only(req: Request) -> Response:
        if req.headers.get("if-none-match") == '"abc"':
            return 304, {"ETag": '"abc"'}, b""
        return 200, {"ETag": '"abc"', "Content-Type": "application/rss+xml"}, etag_body

    def lm_only(req: Request) -> Response:
        if req.headers.get("if-modified-since") == lm:
            return 304, {}, b""
        return 200, {"Last-Modified": lm, "Content-Type": "application/rss+xml"}, lm_body

    server.routes.update({"/etag.xml": etag_only, "/lm.xml": lm_only,
                          "/p.html": (200, {"Content-Type": "text/html"}, b"<p>x</p>")})
    try:
        cfg = {"database": "watcher.db", "rules": "rules.yaml", "channels": {},
               "feeds": [{"name": "etag", "url": server.url("/etag.xml"), "allow_private": True},
                         {"name": "lm", "url": server.url("/lm.xml"), "allow_private": True}]}
        (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / "rules.yaml").write_text("rules: []\n")
        first = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
        assert first.returncode == 0, first.stderr
        server.requests.clear()
        second = run_watcher("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
        assert second.returncode == 0, second.stderr
        feed_requests = [r for r in server.requests if r.path.endswith(".xml")]
        assert len(feed_requests) == 2
        assert all(("if-none-match" in r.headers) or ("if-modified-since" in r.headers)
                   for r in feed_requests)
        assert not [r for r in server.requests if r.path == "/p.html"]
        assert "2 feed(s) polled, 0 failed, 0 new article(s)" in second.stderr
    finally:
        server.close()


def test_feed_failing_past_the_limit_is_flagged_and_reported_once(tmp_path: Path) -> None:
    server = LoopbackServer()
    server.routes["/down.xml"] = (500, {}, b"down")
    try:
        cfg = {"database": "watcher.db", "rules": "rules.yaml",
               "feeds": [{"name": "down", "url": server.url("/down.xml"), "allow_private": True}],
               "channels": {"ops": {"type": "jsonl", "path": "ops.jsonl"}},
               "alerts": {"feed_health": ["ops"], "unhealthy_after": "1s"}}
        (tmp_path / "watcher.yaml").write_text(yaml.safe_dump(cfg))
        (tmp_path / "rules.yaml").write_text("rules: []\n")
        args = ("run", "--once", "--config", str(tmp_path / "watcher.yaml"))
        first = run_watcher(*args)
        assert first.returncode == 1 and "answered 500" in first.stderr
        assert not (tmp_path / "ops.jsonl").exists()  # failing, not yet for long
        time.sleep(1.2)
        second = run_watcher(*args)
        assert "flagged unhealthy" in second.stderr
        third = run_watcher(*args)
        assert "flagged unhealthy" not in third.stderr  # reported once, not every poll
        notices = (tmp_path / "ops.jsonl").read_text().splitlines()
        assert len(notices) == 1 and "'down'" in notices[0] and "answered 500" in notices[0]
        listed = run_watcher("feeds", "--config", str(tmp_path / "watcher.yaml")).stdout
        assert "unhealthy" in listed
    finally:
        server.close()


def test_a_local_feed_rewritten_within_the_same_second_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "feed.xml"
    path.write_bytes(b"<rss version='2.0'><channel><title>a</title></channel></rss>")
    stamp = path.stat().st_mtime_ns
    feed = Feed(name="local", url=path.as_uri(), interval_s=60)

    async def go() -> None:
        async with Fetcher(local_feeds=[feed]) as fetcher:
            first = await fetcher.fetch_feed(feed)
            assert first.status == 200 and first.etag
            again = await fetcher.fetch_feed(feed, etag=first.etag)
            assert again.not_modified
            # Same size, same modification time (to the nanosecond): new content.
            path.write_bytes(b"<rss version='2.0'><channel><title>b</title></channel></rss>")
            os.utime(path, ns=(stamp, stamp))
            changed = await fetcher.fetch_feed(feed, etag=first.etag)
            assert not changed.not_modified and b"<title>b</title>" in changed.body
            assert changed.etag != first.etag
            assert (await fetcher.fetch_feed(feed, etag=changed.etag)).not_modified
    asyncio.run(go())


def test_requests_use_asyncio_locks_not_anyio_s_backend() -> None:
    """httpcore's HTTP/1.1 connection locks with anyio under asyncio, whose backend is
    a start-up's worth of imports; the pool swaps in asyncio's lock. A subprocess: the
    test session may have loaded anyio's backend already."""
    code = """
import asyncio, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from watcher.core.models import Feed
from watcher.fetch.client import Fetcher
from watcher.fetch.pool import _StateLock

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
feed = Feed(name="f", url=f"http://127.0.0.1:{server.server_address[1]}/f",
            interval_s=60, allow_private=True)

async def go():
    async with Fetcher() as fetcher:
        got = [await fetcher.fetch_feed(feed) for _ in range(3)]
        await asyncio.gather(*(fetcher.fetch_feed(feed) for _ in range(5)))
        locks = {type(c._state_lock) for _, c in fetcher._trusted._idle}
        return [r.status for r in got], locks
statuses, locks = asyncio.run(go())
print(statuses, sorted(l.__name__ for l in locks), "anyio._backends._asyncio" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[200, 200, 200] ['_StateLock'] False", out.stderr
