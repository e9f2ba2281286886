"""The connection layer under the fetcher: asyncio streams, the address guard, the pool."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpcore
import pytest
import trustme

import watcher.fetch.transport as transport
from watcher.core.errors import FetchError
from watcher.core.models import Feed
from watcher.fetch.client import Fetcher, HttpLimits

Handler = Callable[[str, asyncio.StreamWriter], Awaitable[None]]


async def ok(path: str, writer: asyncio.StreamWriter) -> None:
    body = f"<p>{path}</p>".encode()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()


class MiniServer:
    """HTTP/1.1 with keep-alive on the test's own event loop; counts connections."""

    def __init__(self, handler: Handler = ok, tls: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.tls = tls
        self.host = host
        self.connections = 0
        self.requests: list[str] = []
        self.port = 0

    async def __aenter__(self) -> MiniServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()

    def url(self, path: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while not writer.is_closing():
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                self.requests.append(path)
                await self.handler(path, writer)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return  # the client hung up or broke off TLS: nothing left to serve
        finally:
            writer.close()


def feed(server: MiniServer, allow_private: bool = True) -> Feed:
    return Feed(name="t", url=server.url("/f.xml"), interval_s=60, allow_private=allow_private)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def trusting(ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Clients made from here on trust `ca` besides the system's roots."""
    default = ssl.create_default_context

    def create(*args: Any, **kw: Any) -> ssl.SSLContext:
        ctx = default(*args, **kw)
        ca.configure_trust(ctx)
        return ctx
    monkeypatch.setattr(transport.ssl, "create_default_context", create)
    yield


def server_tls(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


def test_https_through_the_pool_reuses_one_verified_connection(
        ca: trustme.CA, trusting: None) -> None:
    async def go() -> None:
        async with MiniServer(tls=server_tls(ca, "127.0.0.1")) as server, Fetcher() as fetcher:
            for i in range(3):
                result = await fetcher.fetch_page(feed(server), server.url(f"/a{i}"))
                assert result.status == 200 and result.body == f"<p>/a{i}</p>".encode()
            assert server.connections == 1
    asyncio.run(go())


@pytest.mark.parametrize(("cert_for", "ca_trusted"), [
    ("127.0.0.1", False),  # a certificate from an unknown CA
    ("other.example", True),  # a trusted CA's certificate for another host name
])
def test_https_certificate_is_verified(ca: trustme.CA, request: pytest.FixtureRequest,
                                       cert_for: str, ca_trusted: bool) -> None:
    if ca_trusted:
        request.getfixturevalue("trusting")

    async def go() -> None:
        async with MiniServer(tls=server_tls(ca, cert_for)) as server, Fetcher() as fetcher:
            await fetcher.fetch_page(feed(server), server.url("/a"))

    with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(go())


def test_guarded_client_goes_through_the_same_pool_and_streams(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Loopback stands in for a public address here; the guard's own checks run.
    checked: list[str] = []

    def public(ip: str) -> bool:
        checked.append(ip)
        return True
    monkeypatch.setattr(transport, "is_public_address", public)
    streams: list[object] = []
    opened = transport._open

    async def tracking_open(*args: Any) -> transport._Stream:
        stream = await opened(*args)
        streams.append(stream)
        return stream
    monkeypatch.setattr(transport, "_open", tracking_open)

    async def go() -> None:
        async with MiniServer() as server, Fetcher() as fetcher:
            for i in range(3):
                result = await fetcher.fetch_page(feed(server, allow_private=False),
                                                  server.url(f"/a{i}"))
                assert result.status == 200
            assert server.connections == 1
    asyncio.run(go())
    assert len(streams) == 1 and isinstance(streams[0], transport._Stream)
    assert checked == ["127.0.0.1", "127.0.0.1"]  # the resolved address, then the peer


def test_peer_is_checked_after_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([True, False])  # the resolved address passes, the peer does not
    monkeypatch.setattr(transport, "is_public_address", lambda ip: next(answers))

    async def go() -> None:
        async with MiniServer() as server, Fetcher() as fetcher:
            with pytest.raises(FetchError, match=r"address 127\.0\.0\.1 .*is not public"):
                await fetcher.fetch_page(feed(server, allow_private=False), server.url("/a"))
            assert server.requests == []
    asyncio.run(go())


def test_idle_connection_the_server_closed_is_not_reused() -> None:
    async def close_soon(path: str, writer: asyncio.StreamWriter) -> None:
        await ok(path, writer)
        await asyncio.sleep(0.05)
        writer.close()  # no "Connection: close": the client must notice by itself

    async def go() -> None:
        async with MiniServer(close_soon) as server, Fetcher() as fetcher:
            for i in range(3):
                assert (await fetcher.fetch_page(feed(server), server.url(f"/a{i}"))).status == 200
                await asyncio.sleep(0.2)
            assert server.connections == 3
    asyncio.run(go())


def test_cut_off_responses_free_their_pool_slots() -> None:
    async def stall(path: str, writer: asyncio.StreamWriter) -> None:
        if path != "/slow":
            await ok(path, writer)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nsome")
        await writer.drain()
        await asyncio.sleep(30)

    async def go() -> None:
        limits = HttpLimits(concurrency=2, per_host=2, timeout_s=0.1)
        async with MiniServer(stall) as server, Fetcher(limits) as fetcher:
            # More cut-offs than the pool has connections: a leaked slot would hang.
            for _ in range(6):
                with pytest.raises(FetchError, match="no complete answer"):
                    await fetcher.fetch_page(feed(server), server.url("/slow"))
            assert (await fetcher.fetch_page(feed(server), server.url("/a"))).status == 200
            assert server.connections == 7  # a cut-off connection is never reused
    asyncio.run(go())


def test_stream_timeouts_and_errors_are_httpcore_ones() -> None:
    async def silent(path: str, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async def go() -> None:
        backend = transport.AsyncioBackend(guarded=False)
        async with MiniServer(silent) as server:
            stream = await backend.connect_tcp("127.0.0.1", server.port, timeout=5)
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(1024, timeout=0.1)
            assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)
            assert stream.get_extra_info("ssl_object") is None
            assert stream.get_extra_info("is_readable") is False
            await stream.aclose()
            with pytest.raises(httpcore.ReadError):
                await stream.read(1024, timeout=5)
            port = server.port
        with pytest.raises(httpcore.ConnectError):
            await backend.connect_tcp("127.0.0.1", port, timeout=5)
        with pytest.raises(httpcore.ConnectError, match="not allowed"):
            await backend.connect_unix_socket("/tmp/x.sock")
    asyncio.run(go())


def test_unread_body_stops_the_socket_reads() -> None:
    async def flood(path: str, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20000000\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(300):
            writer.write(chunk)
            await writer.drain()

    async def go() -> None:
        backend = transport.AsyncioBackend(guarded=False)
        async with MiniServer(flood) as server:
            stream = await backend.connect_tcp("127.0.0.1", server.port, timeout=5)
            assert isinstance(stream, transport._Stream)
            await stream.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", timeout=5)
            await asyncio.sleep(0.3)
            # Held: what arrived before the pause (one read of up to 256 KB past it).
            assert stream._protocol.buffered <= 2 * transport._READ_AHEAD
            assert len(await stream.read(65536, timeout=5)) == 65536
            await stream.aclose()
    asyncio.run(go())


def test_next_address_is_tried_when_one_refuses() -> None:
    async def go() -> None:
        async with MiniServer() as server:  # 127.0.0.1 only: 127.0.0.2 refuses
            stream = await transport._open_first(["127.0.0.2", "127.0.0.1"], server.port,
                                                   None, None)
            assert stream.peer_ip == "127.0.0.1"
            await stream.aclose()
    asyncio.run(go())


def test_slow_address_gets_company_after_250ms(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = transport._open
    abandoned = asyncio.Event()

    async def open_slowly(ip: str, *args: Any) -> transport._Stream:
        if ip == "127.0.0.2":  # stands in for an address that never answers
            try:
                await asyncio.sleep(30)
            finally:
                abandoned.set()
        return await opened(ip, *args)
    monkeypatch.setattr(transport, "_open", open_slowly)

    async def go() -> None:
        async with MiniServer() as server:
            loop = asyncio.get_running_loop()
            started = loop.time()
            stream = await transport._open_first(["127.0.0.2", "127.0.0.1"], server.port,
                                                   None, None)
            assert 0.2 < loop.time() - started < 2
            assert stream.peer_ip == "127.0.0.1"
            await asyncio.wait_for(abandoned.wait(), 1)  # the slow attempt was cancelled
            await stream.aclose()
    asyncio.run(go())
