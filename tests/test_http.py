"""The fetcher against loopback servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LoopbackServer, Request, Response
from watcher.core.errors import FetchError
from watcher.core.models import Feed, Undecoded
from watcher.fetch.client import Fetcher, HttpLimits
from watcher.fetch.decoding import BoundedDecoder, content_coding, decode_body
from watcher.fetch.guard import is_public_address, lookup


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    s = LoopbackServer()
    yield s
    s.close()


def feed(url: str, allow_private: bool = True) -> Feed:
    return Feed(name="t", url=url, interval_s=60, allow_private=allow_private)


def fetch_feed(f: Feed, limits: HttpLimits | None = None, **kw: str) -> object:
    async def go() -> object:
        async with Fetcher(limits, local_feeds=[f]) as fetcher:
            return await fetcher.fetch_feed(f, **kw)
    return asyncio.run(go())


def fetch_page(f: Feed, url: str, limits: HttpLimits | None = None, *,
               decode: bool = True) -> Any:
    async def go() -> object:
        async with Fetcher(limits, local_feeds=[f]) as fetcher:
            return await fetcher.fetch_page(f, url, decode=decode)
    return asyncio.run(go())


@pytest.mark.parametrize(("ip", "public"), [
    ("8.8.8.8", True),
    ("2001:4860:4860::8888", True),
    ("127.0.0.1", False),
    ("10.1.2.3", False),
    ("172.16.0.1", False),
    ("192.168.1.1", False),
    ("169.254.169.254", False),
    ("100.64.0.1", False),
    ("0.0.0.0", False),
    ("224.0.0.1", False),
    ("::1", False),
    ("fc00::1", False),
    ("fe80::1", False),
    ("::ffff:127.0.0.1", False),
    ("::ffff:8.8.8.8", True),
    ("not-an-ip", False),
])
def test_public_address_table(ip: str, public: bool) -> None:
    assert is_public_address(ip) is public


def test_feed_on_loopback_needs_allow_private(server: LoopbackServer) -> None:
    server.routes["/f.xml"] = (200, {}, b"<rss/>")
    with pytest.raises(FetchError, match=r"127\.0\.0\.1 .*is not public"):
        fetch_feed(feed(server.url("/f.xml"), allow_private=False))
    assert fetch_feed(feed(server.url("/f.xml"))).status == 200  # type: ignore[attr-defined]


def test_page_link_to_other_private_host_is_refused(server: LoopbackServer) -> None:
    server.routes["/a.html"] = (200, {}, b"<html></html>")
    f = feed(server.url("/f.xml"))
    assert fetch_page(f, server.url("/a.html")).status == 200  # type: ignore[attr-defined]
    # "localhost" is another host name than the feed's 127.0.0.1: untrusted.
    with pytest.raises(FetchError, match="not public"):
        fetch_page(f, f"http://localhost:{server.port}/a.html")
    assert len(server.requests) == 1


def test_redirect_to_private_address_is_refused(server: LoopbackServer) -> None:
    other = LoopbackServer()
    try:
        other.routes["/secret"] = (200, {}, b"secret")
        server.routes["/a.html"] = (302, {"Location": f"http://localhost:{other.port}/secret"},
                                    b"")
        with pytest.raises(FetchError, match="not public"):
            fetch_page(feed(server.url("/f.xml")), server.url("/a.html"))
        assert other.requests == []
    finally:
        other.close()


def test_file_links_refused_outside_local_feeds(tmp_path: Path, server: LoopbackServer) -> None:
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "a.html").write_text("<p>inside</p>")
    (tmp_path / "secret.txt").write_text("secret")
    local = feed((tmp_path / "feeds" / "f.xml").as_uri())
    assert fetch_page(local, (tmp_path / "feeds" / "a.html").as_uri()).body  # type: ignore
    with pytest.raises(FetchError, match="outside the feed's folder"):
        fetch_page(local, (tmp_path / "feeds" / ".." / "secret.txt").as_uri())
    with pytest.raises(FetchError, match="local file is not allowed"):
        fetch_page(feed(server.url("/f.xml")), (tmp_path / "secret.txt").as_uri())
    with pytest.raises(FetchError, match="scheme 'ftp' is not allowed"):
        fetch_page(feed(server.url("/f.xml")), "ftp://example.org/x")


def test_unconfigured_file_feed_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.xml").write_text("<rss/>")
    configured = feed((tmp_path / "f.xml").as_uri())
    other = Feed(name="x", url=(tmp_path / "f.xml").as_uri(), interval_s=60)

    async def go() -> None:
        async with Fetcher(None, local_feeds=[]) as fetcher:
            await fetcher.fetch_feed(other)
    with pytest.raises(FetchError, match="not a configured feed"):
        asyncio.run(go())
    assert fetch_feed(configured).body == b"<rss/>"  # type: ignore[attr-defined]


def test_body_over_cap_stops(server: LoopbackServer) -> None:
    server.routes["/big"] = (200, {}, b"x" * 2_000_000)
    limits = HttpLimits(max_page_bytes=1_000_000)
    with pytest.raises(FetchError, match="1000000 byte cap"):
        fetch_page(feed(server.url("/f.xml")), server.url("/big"), limits)


def test_gzip_bomb_stops_at_cap_after_decompression(server: LoopbackServer) -> None:
    bomb = gzip.compress(b"\0" * 50_000_000, compresslevel=9)
    assert len(bomb) < 100_000
    server.routes["/bomb"] = (200, {"Content-Encoding": "gzip"}, bomb)
    limits = HttpLimits(max_page_bytes=1_000_000)
    with pytest.raises(FetchError, match="over the 1000000 byte cap"):
        fetch_page(feed(server.url("/f.xml")), server.url("/bomb"), limits)


def test_a_page_kept_compressed_comes_as_sent_with_how_to_decode_it(
        server: LoopbackServer) -> None:
    page = b"<p>tactical missile</p>" * 1000
    server.routes["/a"] = (200, {"Content-Encoding": "gzip"}, gzip.compress(page))
    server.routes["/plain"] = (200, {}, page)
    server.routes["/br"] = (200, {"Content-Encoding": "br"}, b"\x0b\x02\x80")
    server.routes["/bomb"] = (200, {"Content-Encoding": "gzip"},
                              gzip.compress(b"\0" * 50_000_000, compresslevel=9))
    server.routes["/big"] = (200, {"Content-Encoding": "gzip"}, os.urandom(1_200_000))
    f, limits = feed(server.url("/f.xml")), HttpLimits(max_page_bytes=1_000_000)
    kept = fetch_page(f, server.url("/a"), limits, decode=False)
    assert kept.undecoded == Undecoded("gzip", 1_000_000, f"feed 't': page {server.url('/a')}")
    assert decode_body(kept.body, kept.undecoded) == page
    plain = fetch_page(f, server.url("/plain"), limits, decode=False)
    assert plain.undecoded is None and plain.body == page
    with pytest.raises(FetchError, match="unsupported Content-Encoding 'br'"):
        fetch_page(f, server.url("/br"), limits, decode=False)  # refused before sending
    bomb = fetch_page(f, server.url("/bomb"), limits, decode=False)  # 50 KB as sent
    with pytest.raises(FetchError, match="over the 1000000 byte cap"):
        decode_body(bomb.body, bomb.undecoded)
    with pytest.raises(FetchError, match="over the 1000000 byte cap"):  # as sent, too
        fetch_page(f, server.url("/big"), limits, decode=False)


def test_trickling_server_stops_at_the_deadline(server: LoopbackServer) -> None:
    def trickle(req: Request) -> Response:
        time.sleep(3)
        return 200, {}, b"late"
    server.routes["/slow"] = trickle
    with pytest.raises(FetchError, match=r"no complete answer within 0\.5s"):
        fetch_page(feed(server.url("/f.xml")), server.url("/slow"), HttpLimits(timeout_s=0.5))


def test_redirect_loop_and_too_many_redirects(server: LoopbackServer) -> None:
    server.routes["/a"] = (302, {"Location": "/b"}, b"")
    server.routes["/b"] = (302, {"Location": "/a"}, b"")
    with pytest.raises(FetchError, match="redirect loop"):
        fetch_page(feed(server.url("/f.xml")), server.url("/a"))
    for i in range(8):
        server.routes[f"/r{i}"] = (301, {"Location": f"/r{i + 1}"}, b"")
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch_page(feed(server.url("/f.xml")), server.url("/r0"))


def test_conditional_get_and_permanent_redirect(server: LoopbackServer) -> None:
    def feed_route(req: Request) -> Response:
        if req.headers.get("if-none-match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {"ETag": '"v1"', "Last-Modified": "Wed, 15 May 2024 03:12:00 GMT"}, b"<rss/>"
    server.routes["/new.xml"] = feed_route
    server.routes["/old.xml"] = (301, {"Location": "/new.xml"}, b"")
    f = feed(server.url("/old.xml"))
    first = fetch_feed(f)
    assert first.status == 200 and first.etag == '"v1"'  # type: ignore[attr-defined]
    assert first.permanent_redirect == server.url("/new.xml")  # type: ignore[attr-defined]
    second = fetch_feed(f, url=server.url("/new.xml"), etag='"v1"')
    assert second.not_modified  # type: ignore[attr-defined]
    assert server.requests[-1].headers["if-none-match"] == '"v1"'


def test_user_agent_names_the_project(server: LoopbackServer) -> None:
    server.routes["/f.xml"] = (200, {}, b"<rss/>")
    fetch_feed(feed(server.url("/f.xml")))
    assert server.requests[0].headers["user-agent"].startswith("watcher/")


def test_error_status_carries_retry_after(server: LoopbackServer) -> None:
    server.routes["/f.xml"] = (503, {"Retry-After": "120"}, b"busy")
    with pytest.raises(FetchError) as info:
        fetch_feed(feed(server.url("/f.xml")))
    assert info.value.status == 503 and info.value.retry_after == 120.0
    assert "answered 503" in str(info.value)


@pytest.mark.parametrize(("header", "low", "high"), [
    ("  30 ", 30, 30),
    ("0", 0, 0),
    ("999999", 86400, 86400),  # capped at a day
    ("in a while", None, None),  # unusable: as if absent
    ("", None, None),
])
def test_retry_after_in_seconds_becomes_a_number(server: LoopbackServer, header: str,
                                                  low: float | None, high: float | None
                                                  ) -> None:
    server.routes["/f.xml"] = (429, {"Retry-After": header}, b"slow down")
    with pytest.raises(FetchError) as info:
        fetch_feed(feed(server.url("/f.xml")))
    assert info.value.status == 429
    if low is None:
        assert info.value.retry_after is None
    else:
        assert info.value.retry_after is not None and low <= info.value.retry_after <= high


@pytest.mark.parametrize(("ahead_s", "low", "high"), [
    (3600, 3500, 3600),  # an HTTP date an hour on: about an hour from now
    (-3600, 0, 0),  # a date gone by: at once
])
def test_retry_after_as_an_http_date_becomes_seconds_from_now(
        server: LoopbackServer, ahead_s: int, low: float, high: float) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = datetime.now(UTC) + timedelta(seconds=ahead_s)
    for header in (format_datetime(when, usegmt=True),  # IMF-fixdate
                   when.strftime("%a %b %d %H:%M:%S %Y")):  # asctime, no zone: GMT
        server.routes["/f.xml"] = (503, {"Retry-After": header}, b"busy")
        with pytest.raises(FetchError) as info:
            fetch_feed(feed(server.url("/f.xml")))
        seconds = info.value.retry_after
        assert isinstance(seconds, float) and low <= seconds <= high, (header, seconds)


def test_per_host_and_global_limits_hold(server: LoopbackServer) -> None:
    import threading

    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(req: Request) -> Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return 200, {}, b"<p>x</p>"

    for i in range(8):
        server.routes[f"/p{i}.html"] = slow
    f = feed(server.url("/f.xml"))
    g = replace(f, name="other")

    async def go(limits: HttpLimits, feeds: tuple[Feed, ...] = (f,)) -> None:
        async with Fetcher(limits, local_feeds=[f]) as fetcher:
            await asyncio.gather(*(fetcher.fetch_page(feeds[i % len(feeds)],
                                                      server.url(f"/p{i}.html"))
                                   for i in range(8)))

    asyncio.run(go(HttpLimits(per_host=2, concurrency=16)))
    assert state["peak"] == 2
    state["peak"] = 0
    asyncio.run(go(HttpLimits(per_host=8, concurrency=3), (f, g)))
    assert state["peak"] == 3  # the global limit
    state["peak"] = 0
    # One feed's pages take at most three quarters of the page slots.
    asyncio.run(go(HttpLimits(per_host=8, concurrency=4)))
    assert state["peak"] == 3


@pytest.mark.parametrize("coding, pack", [
    ("gzip", lambda b: gzip.compress(b)),
    ("x-gzip", lambda b: gzip.compress(b)),
    ("deflate", zlib.compress),  # deflate as the standard says: zlib-wrapped
    ("deflate", lambda b: (lambda c: c.compress(b) + c.flush())(  # as some servers send it
        zlib.compressobj(wbits=-15))),
    ("", lambda b: b),
    ("identity", lambda b: b),
])
def test_bounded_decoder_reads_each_encoding_in_small_chunks(coding: str, pack: Any) -> None:
    body = b"<p>tactical missile</p>" * 5000
    data = pack(body)
    decoder = BoundedDecoder(content_coding(coding, "page"), 1_000_000, "page")
    for i in range(0, len(data), 1000):
        decoder.feed(data[i:i + 1000])
    assert decoder.finish() == body


def test_bounded_decoder_refuses_what_it_cannot_decode() -> None:
    with pytest.raises(FetchError, match=r"page: cannot decode gzip body"):
        BoundedDecoder("gzip", 1000, "page").feed(b"not gzip at all, just bytes")
    with pytest.raises(FetchError, match=r"unsupported Content-Encoding 'br'"):
        content_coding("br", "page")
    with pytest.raises(FetchError, match=r"unsupported Content-Encoding 'gzip, gzip'"):
        content_coding("gzip, gzip", "page")
    with pytest.raises(FetchError, match=r"over the 1000 byte cap"):
        BoundedDecoder("gzip", 1000, "page").feed(gzip.compress(b"x" * 5000))


def test_request_line_and_headers_as_sent(server: LoopbackServer) -> None:
    """Non-ASCII and spaces in a link are percent-encoded; no cookie is kept."""
    server.routes["/set"] = (200, {"Set-Cookie": "session=abc; Path=/"}, b"<p>one</p>")
    server.routes["/%C3%A4%20b.html"] = (200, {}, b"<p>two</p>")
    f = feed(server.url("/f.xml"))

    async def go() -> None:
        async with Fetcher(local_feeds=[f]) as fetcher:
            await fetcher.fetch_page(f, server.url("/set"))
            page = await fetcher.fetch_page(f, server.url("/ä b.html"))
            assert page.body == b"<p>two</p>"
    asyncio.run(go())
    second = server.requests[1]
    assert second.path == "/%C3%A4%20b.html"
    assert second.headers["host"] == server.url("").split("//")[1].rstrip("/")
    assert second.headers["accept-encoding"] == "gzip, deflate"
    assert "cookie" not in second.headers


@pytest.mark.parametrize(("url", "reason"), [
    ("http://[::1/x", "invalid URL"),
    ("http:///x", "no host"),
    ("http://127.0.0.1:99999/x", "port"),
])
def test_unusable_links_are_that_page_s_error(url: str, reason: str) -> None:
    with pytest.raises(FetchError, match=rf"page {re.escape(url)}: .*{reason}"):
        fetch_page(feed("http://127.0.0.1:1/f.xml"), url)


def test_repeated_response_headers_are_joined() -> None:
    from watcher.fetch.client import _header_dict

    assert _header_dict([(b"Link", b"<a>"), (b"X-Y", b"caf\xc3\xa9"), (b"link", b"<b>"),
                         (b"X-Z", b"caf\xe9")]) == {
        "link": "<a>, <b>", "x-y": "café", "x-z": "café"}


def test_unusable_redirect_is_that_page_s_error(server: LoopbackServer) -> None:
    server.routes["/moved"] = (302, {"Location": "http://[::1/x"}, b"")
    with pytest.raises(FetchError, match=r"page .*/moved: unusable redirect to 'http://\[::1/x'"):
        fetch_page(feed(server.url("/f.xml")), server.url("/moved"))


def test_credentials_in_a_feed_url_go_as_basic_auth(server: LoopbackServer) -> None:
    server.routes["/private.xml"] = (302, {"Location": "/moved.xml"}, b"")
    server.routes["/moved.xml"] = (200, {}, b"<rss/>")
    base = server.url("/private.xml").replace("http://", "http://reader:p%40ss@")
    fetch_feed(feed(base))
    first, second = server.requests
    assert first.headers["authorization"] == "Basic cmVhZGVyOnBAc3M="  # reader:p@ss
    assert second.headers["authorization"] == first.headers["authorization"]  # same site
    fetch_page(feed(base), server.url("/moved.xml"))  # the page link carries none
    assert "authorization" not in server.requests[-1].headers


def test_lookup_resolves_a_name_and_refuses_one_no_resolver_can_take() -> None:
    import httpcore

    assert "127.0.0.1" in asyncio.run(lookup("localhost", 80)) or \
        "::1" in asyncio.run(lookup("localhost", 80))
    assert asyncio.run(lookup("127.0.0.1", 80)) == ["127.0.0.1"]
    # a 70-letter label: the idna codec would raise UnicodeError, not a fetch error
    with pytest.raises(httpcore.ConnectError, match="cannot resolve"):
        asyncio.run(lookup("a" * 70 + ".invalid", 80))
