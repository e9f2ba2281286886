"""A loopback HTTP server for the corpus, in its own process.

It runs in a separate process so that serving thousands of requests a second never
competes with the measured process for its GIL. It binds 127.0.0.1, port 0, only.

- Feeds at /f/<name>, pages at /p/<feed>/<index>, all rendered and gzipped once at
  start-up, so serving costs almost nothing during a measurement.
- ETag and Last-Modified on everything; If-None-Match (which wins when present, as
  RFC 9110 says) or If-Modified-Since answer 304.
- gzip when the client accepts it; HTTP/1.1 keep-alive (aiohttp's default).
- Optional latency added before every answer.
- Control endpoints under /_ctl/: stats, reset, publish (a new matching item at the
  top of one feed; the server notes when that item is first served).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import multiprocessing
import multiprocessing.connection
import socket
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from aiohttp import web

from benchmarks.corpus import (
    CorpusSpec,
    FeedDoc,
    build,
    feed_path,
    make_item,
    page_path,
    render_feed,
    render_page,
)


@dataclass
class Resource:
    body: bytes
    gz: bytes
    content_type: str
    etag: str
    mtime: float  # seconds since the epoch; Last-Modified has one-second resolution

    @classmethod
    def make(cls, body: bytes, content_type: str, version: str, mtime: float) -> Resource:
        # Level 5: close to 6 in size, noticeably faster to build 100+ MB of pages.
        return cls(body, gzip.compress(body, compresslevel=5), content_type,
                   f'"{version}"', mtime)

    @property
    def last_modified(self) -> str:
        return formatdate(self.mtime, usegmt=True)


class CorpusApp:
    def __init__(self, spec: CorpusSpec, base: str, latency_s: float) -> None:
        self.spec = spec
        self.base = base
        self.latency_s = latency_s
        self.docs: dict[str, FeedDoc] = {d.name: d for d in build(spec)}
        self.versions: dict[str, int] = dict.fromkeys(self.docs, 0)
        self.resources: dict[str, Resource] = {}
        start = time.time() - 86400  # everything "last modified" yesterday
        for doc in self.docs.values():
            self._render_feed(doc, start)
            for item in doc.items:
                if item.has_link:
                    self.resources[page_path(item)] = Resource.make(
                        render_page(item, base), "text/html; charset=utf-8",
                        f"p-{spec.seed}-{item.feed}-{item.index}", start)
        self.counts: dict[str, int] = {}
        # feed name -> publish record (times from time.time(): shared with the harness)
        self.published: dict[str, dict[str, Any]] = {}
        self._publishes = 0

    def _render_feed(self, doc: FeedDoc, mtime: float) -> None:
        body, ctype = render_feed(doc, self.base)
        self.resources[feed_path(doc.name)] = Resource.make(
            body, ctype, f"f-{self.spec.seed}-{doc.name}-{self.versions[doc.name]}", mtime)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_ctl/"):
            return self._control(request)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        kind = "feed" if path.startswith("/f/") else "page"
        self._count(f"{kind}_requests")
        res = self.resources.get(path)
        if res is None:
            self._count(f"{kind}_404")
            return web.Response(status=404, text="not found")
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if inm or ims:
            self._count(f"{kind}_conditional")
        if inm is not None:
            fresh = res.etag in [t.strip().removeprefix("W/") for t in inm.split(",")]
        elif ims is not None:
            try:
                fresh = parsedate_to_datetime(ims).timestamp() >= int(res.mtime)
            except (TypeError, ValueError):
                fresh = False
        else:
            fresh = False
        validators = {"ETag": res.etag, "Last-Modified": res.last_modified}
        if fresh:
            self._count(f"{kind}_304")
            return web.Response(status=304, headers=validators)
        self._count(f"{kind}_200")
        headers = {**validators, "Content-Type": res.content_type, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = res.gz
        else:
            body = res.body
        if kind == "feed":
            rec = self.published.get(path[3:])
            if rec and rec["served_at"] is None and rec["etag"] == res.etag:
                rec["served_at"] = time.time()
        return web.Response(body=body, headers=headers)

    def _control(self, request: web.BaseRequest) -> web.Response:
        action = request.path.removeprefix("/_ctl/")
        if action == "stats":
            return web.json_response({"counts": self.counts, "published": self.published})
        if action == "reset":
            self.counts = {}
            return web.json_response({"ok": True})
        if action == "publish":
            name = request.query["feed"]
            doc = self.docs[name]
            self._publishes += 1
            index = 1_000_000 + self._publishes  # far past any generated item
            item = make_item(self.spec, name, index, kind="target")
            item.published = datetime.now(UTC)
            self.resources[page_path(item)] = Resource.make(
                render_page(item, self.base), "text/html; charset=utf-8",
                f"p-{self.spec.seed}-{name}-{index}", time.time())
            doc.items = [item, *doc.items[:-1]]
            self.versions[name] += 1
            now = time.time()
            self._render_feed(doc, now)
            self.published[name] = {"guid": item.guid, "title": item.title,
                                    "published_at": now, "served_at": None,
                                    "etag": self.resources[feed_path(name)].etag}
            return web.json_response(self.published[name])
        return web.json_response({"error": "unknown action"}, status=404)


def _serve(spec: CorpusSpec, latency_s: float,
           conn: multiprocessing.connection.Connection) -> None:
    async def main() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))  # loopback only, any free port
        port = sock.getsockname()[1]
        app = CorpusApp(spec, f"http://127.0.0.1:{port}", latency_s)
        server = web.Server(app.handle, access_log=None)
        runner = web.ServerRunner(server, handle_signals=True)
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=2048)
        await site.start()
        conn.send({"port": port, "resources": len(app.resources),
                   "bytes": sum(len(r.body) for r in app.resources.values())})
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt, SystemExit):  # terminate() is the way out
        asyncio.run(main())


class CorpusServer:
    """The parent's handle on the server process."""

    def __init__(self, spec: CorpusSpec, latency_s: float = 0.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(spec, latency_s, child),
                                   name="bench-server", daemon=True)
        self.process.start()
        if not parent.poll(600):
            self.close()
            raise RuntimeError("benchmark server did not start within 10 minutes")
        info = parent.recv()
        self.port: int = info["port"]
        self.info: dict[str, Any] = info
        self.base = f"http://127.0.0.1:{self.port}"

    def feed_url(self, name: str) -> str:
        return self.base + feed_path(name)

    def _call(self, action: str, method: str = "GET", query: str = "") -> Any:
        req = urllib.request.Request(f"{self.base}/_ctl/{action}{query}", method=method)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("stats")

    def reset(self) -> None:
        self._call("reset", "POST")

    def publish(self, feed: str) -> dict[str, Any]:
        return self._call("publish", "POST", f"?feed={feed}")

    def close(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()

    def __enter__(self) -> CorpusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
