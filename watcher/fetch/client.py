"""The one HTTP client: deadlines, size caps, conditional GET, redirects and address checks.

Everything fetched on behalf of feed content is untrusted: a link may point at
an internal service, a file, or a body that never ends. So every download has
a total deadline and a cap on decoded bytes, every redirect hop is checked
like the first request, and the address actually connected to (after DNS) is
checked inside the connection layer (transport.py, guard.py), which leaves no
DNS-rebinding gap.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import mimetypes
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import httpcore

from watcher import __version__
from watcher.core.errors import FetchError
from watcher.core.models import Feed, FetchResult, Undecoded
from watcher.core.schedule import parse_retry_after
from watcher.fetch.decoding import BoundedDecoder, GzipFile, Sink, content_coding
from watcher.fetch.httpx_lib import httpx
from watcher.fetch.pool import Body, Pool
from watcher.fetch.transport import AsyncioBackend

USER_AGENT = f"watcher/{__version__} (news keyword alerts; +https://github.com/watcher-alerts/watcher)"
MAX_REDIRECTS = 5
_PAGE_ACCEPT = "text/html,application/xhtml+xml,*/*;q=0.8"
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class HttpLimits:
    """Time and size limits of every request the fetcher makes."""

    timeout_s: float = 30.0
    max_feed_bytes: int = 10 * 1000**2
    max_page_bytes: int = 5 * 1000**2
    max_sitemap_bytes: int = 50 * 1000**2  # decoded; the protocol's own limit
    concurrency: int = 16
    per_host: int = 2
    user_agent: str = USER_AGENT


def _pool(limits: HttpLimits, guarded: bool) -> Pool:
    # Feeds and pages each have `concurrency` requests in flight: connections for
    # both kept alive, and room for the sites queued behind them.
    pool_limits = httpx.Limits(max_connections=limits.concurrency * 4,
                               max_keepalive_connections=limits.concurrency * 2)
    return Pool(AsyncioBackend(guarded), ssl.create_default_context, pool_limits)


# httpcore's exceptions (those of transport.py and pool.py are among them): one request's
# failure, never the daemon's.
_REQUEST_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError,
                   httpcore.UnsupportedProtocol, httpcore.ProxyError)


def _text(value: bytes) -> str:
    """A header value as httpx gave it: UTF-8 when it is, else Latin-1 (lossless)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _header_dict(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ", " (RFC 9110 5.3)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        headers[key] = f"{headers[key]}, {_text(value)}" if key in headers else _text(value)
    return headers


def _file_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise FetchError(f"{url}: file URLs on other hosts are not supported")
    return Path(unquote(parts.path))


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def _scheme(url: str, what: str) -> str:
    try:
        return urlsplit(url).scheme.lower()
    except ValueError as exc:  # "Invalid IPv6 URL" and the like: the link's fault
        raise FetchError(f"{what}: invalid URL {url}: {exc}") from None


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


class Fetcher:
    """Fetches feeds and article pages under the limits and the address policy."""

    def __init__(self, limits: HttpLimits | None = None,
                 local_feeds: Iterable[Feed] = ()) -> None:
        self.limits = limits or HttpLimits()
        self._public = _pool(self.limits, guarded=True)
        self._trusted = _pool(self.limits, guarded=False)
        timeout = self.limits.timeout_s
        self._timeouts = {"connect": timeout, "read": timeout, "write": timeout,
                          "pool": timeout}
        self._headers = [(b"User-Agent", self.limits.user_agent.encode()),
                         (b"Accept-Encoding", b"gzip, deflate"), (b"Connection", b"keep-alive")]
        # Feeds and pages have slots of their own, globally and per host: pages that
        # hang (or a feed bringing thousands of them) never keep another feed of the
        # same site, or any other, from being polled. At most `per_host` of each.
        self._global = {kind: asyncio.Semaphore(self.limits.concurrency)
                        for kind in ("feed", "page")}
        self._hosts: dict[tuple[str, str], asyncio.Semaphore] = {}
        # and one feed's pages (hanging, say) at most three quarters of the page slots
        self._feed_pages: dict[str, asyncio.Semaphore] = {}
        # file: URLs may only be read for feeds the operator named in config.
        self._configured_files = {f.url for f in local_feeds if f.url.startswith("file:")}

    def configure_local_feeds(self, feeds: Iterable[Feed]) -> None:
        """The config was reloaded: the file feeds it names are the ones allowed now."""
        self._configured_files = {f.url for f in feeds if f.url.startswith("file:")}

    async def aclose(self) -> None:
        await self._public.aclose()
        await self._trusted.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- feeds --------------------------------------------------------------

    async def fetch_feed(self, feed: Feed, url: str | None = None, etag: str | None = None,
                         last_modified: str | None = None) -> FetchResult:
        url = url or feed.url
        scheme = _scheme(url, f"feed {feed.name!r}")
        if scheme == "file":
            if feed.url != url or url not in self._configured_files:
                raise FetchError(f"feed {feed.name!r}: file URL {url} is not a configured feed")
            return await self._read_file(_file_path(url), url, self.limits.max_feed_bytes,
                                         etag)
        if scheme not in ("http", "https"):
            raise FetchError(f"feed {feed.name!r}: scheme {scheme!r} is not allowed")
        headers = {"Accept": "application/rss+xml, application/atom+xml, application/feed+json, "
                             "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return await self._follow(feed, url, headers, "feed", self.limits.max_feed_bytes,
                               f"feed {feed.name!r}")

    async def fetch_sitemap(self, feed: Feed, url: str, sink: Sink, etag: str | None = None,
                            last_modified: str | None = None) -> FetchResult:
        """A sitemap of a sitemap source, conditionally. Its decoded bytes go to `sink`
        as they arrive (the result's body is empty), inflated when the file itself is
        gzip, capped at max_sitemap_bytes after decompression; reading stops early
        when the sink has had enough."""
        what = f"feed {feed.name!r}: sitemap {url}"
        scheme = _scheme(url, what)
        if scheme not in ("http", "https"):
            raise FetchError(f"{what}: scheme {scheme!r} is not allowed")
        headers = {"Accept": "application/xml, text/xml;q=0.9, */*;q=0.5"}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        cap = self.limits.max_sitemap_bytes
        gz = GzipFile(sink, cap, what)
        result = await self._follow(feed, url, headers, "feed", cap, what, sink=gz)
        if not result.not_modified:
            gz.finish()
        return result

    async def post_form(self, feed: Feed, url: str, fields: dict[str, str]) -> int:
        """A form POST on behalf of `feed` (a WebSub hub's subscription request): its
        status. The hub is named by feed content, so it is guarded like a page; a
        redirect is not followed (a POST is not repeated elsewhere)."""
        what = f"feed {feed.name!r}: hub {url}"
        if _scheme(url, what) not in ("http", "https"):
            raise FetchError(f"{what}: scheme is not allowed")
        content = urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Content-Length": str(len(content))}
        async with self._global["feed"], self._host_slot(url, "feed"):
            try:
                async with asyncio.timeout(self.limits.timeout_s):
                    status, *_ = await self._one(self._pool_for(feed, url), url, headers,
                                                 65536, what, True, method=b"POST",
                                                 content=content)
            except TimeoutError:
                raise FetchError(f"{what}: no complete answer within "
                                 f"{self.limits.timeout_s:g}s") from None
        return status

    # -- pages --------------------------------------------------------------

    async def fetch_page(self, feed: Feed, url: str, *, decode: bool = True) -> FetchResult:
        """An article page linked from `feed`. The link is feed content: untrusted.

        decode=False keeps a compressed body as it came (`undecoded` says how to
        decode it, under the same cap): the extraction workers inflate it.
        """
        what = f"feed {feed.name!r}: page {url}"
        scheme = _scheme(url, what)
        if scheme == "file":
            if not feed.url.startswith("file:"):
                raise FetchError(f"{what}: a link to a local file is not allowed")
            root = _file_path(feed.url).resolve().parent
            path = _file_path(url).resolve()
            if not path.is_relative_to(root):
                raise FetchError(f"{what}: outside the feed's folder {root}; refused")
            return await self._read_file(path, url, self.limits.max_page_bytes, None)
        if scheme not in ("http", "https"):
            raise FetchError(f"{what}: scheme {scheme!r} is not allowed")
        return await self._follow(feed, url, {"Accept": _PAGE_ACCEPT}, "page",
                                  self.limits.max_page_bytes, what, decode=decode)

    # -- the work -----------------------------------------------------------

    def _feed_slot(self, feed: Feed, kind: str) -> asyncio.Semaphore | contextlib.nullcontext[None]:
        if kind != "page":
            return contextlib.nullcontext()
        if feed.name not in self._feed_pages:
            share = max(self.limits.concurrency * 3 // 4, 1)
            self._feed_pages[feed.name] = asyncio.Semaphore(share)
        return self._feed_pages[feed.name]

    def _host_slot(self, url: str, kind: str) -> asyncio.Semaphore:
        key = (_host(url), kind)
        if key not in self._hosts:
            self._hosts[key] = asyncio.Semaphore(self.limits.per_host)
        return self._hosts[key]

    def _pool_for(self, feed: Feed, url: str) -> Pool:
        """Private addresses only for a feed the config trusts, and only on its own host."""
        if feed.allow_private and _host(url) == _host(feed.url):
            return self._trusted
        return self._public

    async def _follow(self, feed: Feed, url: str, headers: dict[str, str], kind: str,
                      cap: int, what: str, *, decode: bool = True,
                      sink: Sink | None = None) -> FetchResult:
        seen: set[str] = set()
        permanent: str | None = None
        all_permanent = True
        # The deadline covers connect, headers and body of every hop, but not the
        # time spent queued behind the concurrency limits: that is our own doing.
        budget = self.limits.timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            if url in seen:
                raise FetchError(f"{what}: redirect loop at {url}")
            seen.add(url)
            if _scheme(url, what) not in ("http", "https"):
                raise FetchError(f"{what}: redirect to non-HTTP URL {url} refused")
            pool = self._pool_for(feed, url)  # each hop is checked like the first
            async with self._feed_slot(feed, kind), self._global[kind], \
                    self._host_slot(url, kind):
                started = loop_time()
                try:
                    async with asyncio.timeout(budget):
                        status, resp_headers, body, coding = await self._one(
                            pool, url, headers, cap, what, decode, sink)
                except TimeoutError:
                    raise FetchError(f"{what}: no complete answer within "
                                     f"{self.limits.timeout_s:g}s") from None
                budget -= loop_time() - started
            if status in _REDIRECTS and "location" in resp_headers:
                try:
                    target = urljoin(url, resp_headers["location"])
                except ValueError as exc:
                    raise FetchError(f"{what}: unusable redirect to "
                                     f"{resp_headers['location']!r}: {exc}") from None
                all_permanent = all_permanent and status in (301, 308)
                if all_permanent:
                    permanent = target
                url = target
                continue
            if status == 304:
                return FetchResult(url, status, resp_headers, b"", not_modified=True,
                                   permanent_redirect=permanent)
            if status >= 400:
                # Seconds from now, either form (an HTTP date is relative to this clock)
                retry_after = parse_retry_after(resp_headers.get("retry-after"),
                                                datetime.now(UTC))
                raise FetchError(f"{what}: answered {status}", status=status,
                                 retry_after=retry_after)
            return FetchResult(url, status, resp_headers, body, permanent_redirect=permanent,
                               undecoded=Undecoded(coding, cap, what) if coding else None)
        raise FetchError(f"{what}: more than {MAX_REDIRECTS} redirects")

    async def _one(self, pool: Pool, url: str, headers: dict[str, str], cap: int, what: str,
                   decode: bool, sink: Sink | None = None, method: bytes = b"GET",
                   content: bytes | None = None
                   ) -> tuple[int, dict[str, str], bytes, str | None]:
        """One request, straight on the connection pool.

        httpx's client around the pool (its models, cookie jar, URL and header
        handling) cost more CPU a page than the pool itself; what this needs of it
        is its URL parsing: IDNA host names, percent-encoded paths. No cookies are
        kept: a poller has no session, and a site's cookies would otherwise go back
        to it with every later request, a tracking handle across feeds.
        """
        try:
            target = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise FetchError(f"{what}: invalid URL: {exc}") from None
        if not target.raw_host:
            raise FetchError(f"{what}: no host in {url}")
        if target.port is not None and not 0 < target.port < 65536:
            raise FetchError(f"{what}: port {target.port} is out of range")
        sent = [(b"Host", target.netloc), *self._headers,
                *((k.encode(), v.encode()) for k, v in headers.items())]
        if target.userinfo:
            # A private feed's credentials in its URL (https://user:token@host/feed),
            # sent as httpx sent them: HTTP Basic, with the requests whose URL carries
            # them (a relative redirect keeps them; a link to another site does not).
            credentials = f"{target.username}:{target.password}".encode()
            sent.append((b"Authorization", b"Basic " + base64.b64encode(credentials)))
        request = httpcore.Request(
            method, httpcore.URL(scheme=target.raw_scheme, host=target.raw_host,
                                 port=target.port, target=target.raw_path),
            headers=sent, content=content, extensions={"timeout": self._timeouts})
        try:
            response = await pool.handle_async_request(request)
            body = cast(Body, response.stream)
            try:
                status = response.status
                resp_headers = _header_dict(response.headers)
                if status in _REDIRECTS or status == 304 or status >= 400:
                    # Read the (small) body so the connection goes back to the pool:
                    # a 304 must not cost a new connection, or a TLS handshake.
                    await self._drain(body)
                    return status, resp_headers, b"", None
                declared = resp_headers.get("content-length", "")
                if declared.isdigit() and int(declared) > cap:
                    raise FetchError(f"{what}: declares {int(declared)} bytes, over the "
                                     f"{cap} byte cap")
                coding = content_coding(resp_headers.get("content-encoding", ""), what)
                # Decoded here, not by a library: a decoder without an output limit
                # could turn one 64 KB gzip chunk into hundreds of MB before a check.
                # Kept encoded, the body is still capped, as it came.
                decoder = BoundedDecoder(coding if decode else None, cap, what, sink)
                async for chunk in body:
                    decoder.feed(chunk)
                    if decoder.stopped:
                        return status, resp_headers, b"", None  # the sink has enough
                return status, resp_headers, decoder.finish(), None if decode else coding
            finally:
                await body.aclose()  # back to the pool, or closed if the body was cut
        except _REQUEST_ERRORS as exc:
            reason = str(exc) or type(exc).__name__
            raise FetchError(f"{what}: {reason}") from None

    @staticmethod
    async def _drain(body: Body, limit: int = 65536) -> None:
        read = 0
        async for chunk in body:
            read += len(chunk)
            if read > limit:
                return  # a large error page: not worth keeping the connection for

    async def _read_file(self, path: Path, url: str, cap: int,
                         etag: str | None) -> FetchResult:
        """A local file. Its validator is a hash of its content, not its time: a file
        rewritten within the same second (or with its old time put back) is new."""
        def read() -> FetchResult:
            try:
                with path.open("rb") as fh:
                    body = fh.read(cap + 1)
                    stamp = formatdate(os.fstat(fh.fileno()).st_mtime, usegmt=True)
            except FileNotFoundError:
                raise FetchError(f"{url}: no such file", status=404) from None
            except OSError as exc:
                raise FetchError(f"{url}: cannot read: {exc.strerror or exc}") from None
            if len(body) > cap:
                raise FetchError(f"{url}: file over the {cap} byte cap")
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            tag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
            headers = {"last-modified": stamp, "content-type": ctype, "etag": tag}
            if etag == tag:
                return FetchResult(url, 304, headers, b"", not_modified=True)
            return FetchResult(url, 200, headers, body)

        return await asyncio.to_thread(read)
