"""Connections under the HTTP client: asyncio transports, the address guard, keep-alive.

httpcore speaks HTTP/1.1 over these; the pool and the network backend here take
the place of httpcore's own. Profiled under load, those cost more than all of
h11: anyio cancel scopes on every read and write, and a pool that rescans every
connection several times per request (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import select
import socket
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any, cast

import httpcore
import httpx


def is_public_address(ip: str) -> bool:
    """False for loopback, private, link-local, CGNAT, multicast, reserved, unspecified."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            return is_public_address(str(mapped))
    if addr in ipaddress.ip_network("100.64.0.0/10"):
        return False
    return addr.is_global and not addr.is_multicast


async def _resolve(host: str, port: int) -> list[str]:
    literal = host.strip("[]")
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(literal))]  # an address needs no lookup
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_READ_AHEAD = 256 * 1024  # unread bytes held before the socket stops being read
_ATTEMPT_DELAY_S = 0.25  # RFC 8305: start the next address if one is slow to answer


class _Protocol(asyncio.Protocol):
    """Buffers what the event loop reads, for one connection's `_Stream`.

    The loop keeps reading while the buffer is small, so a peer's close or any
    unsolicited bytes show up here without a system call; past `_READ_AHEAD`
    reading pauses, which keeps an endless body from piling up in memory.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: collections.deque[bytes] = collections.deque()
        self.offset = 0  # into chunks[0]: slicing off its head would copy the rest
        self.buffered = 0
        self.eof = False
        self.lost = False
        self.error: Exception | None = None
        self.paused = False
        self.write_paused = False
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have every method of asyncio.Transport without
        # deriving from it: no isinstance check.
        self.use(cast(asyncio.Transport, transport))

    def use(self, transport: asyncio.Transport) -> None:
        """Read and write through `transport` (after start_tls: the TLS one)."""
        self.transport = transport
        # As anyio does: a write completes once the kernel has the bytes, so a
        # write timeout means the peer stopped taking them.
        transport.set_write_buffer_limits(0)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _READ_AHEAD and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.error = exc
        self._wake()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def take(self, max_bytes: int) -> bytes:
        chunks = self.chunks
        first = chunks[0]
        start = self.offset
        if len(first) - start > max_bytes:
            data = first[start:start + max_bytes]
            self.offset = start + max_bytes
        else:
            data = first[start:] if start else first
            chunks.popleft()
            self.offset = 0
            if chunks and len(data) + len(chunks[0]) <= max_bytes:
                # Several small TLS records: one read means one pass through h11.
                parts = [data]
                size = len(data)
                while chunks and size + len(chunks[0]) <= max_bytes:
                    size += len(chunks[0])
                    parts.append(chunks.popleft())
                data = b"".join(parts)
        self.buffered -= len(data)
        if self.paused and self.buffered <= _READ_AHEAD // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    async def wait(self, timeout: float | None) -> None:
        """Until the next event on the connection; TimeoutError after `timeout`.

        One waiter at a time: httpcore's HTTP/1.1 never reads and writes at once.
        """
        waiter = asyncio.get_running_loop().create_future()
        self.waiter = waiter
        if timeout is None:
            await waiter
            return
        # One timer handle instead of a timeout context: this runs for most reads.
        timer = waiter.get_loop().call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of one connection, on asyncio's own transports.

    In place of httpcore's AnyIO backend, which cost more than all of h11: an
    anyio cancel scope on every read and write, and on every "is_readable"
    question a rebuilt attribute dict, a getpeername() and a fresh poll object.
    """

    def __init__(self, transport: asyncio.Transport, protocol: _Protocol,
                 sock: socket.socket, poller: _Poller, local: Any, peer: Any) -> None:
        self._transport = transport
        self._protocol = protocol
        self._sock = sock
        self._poller = poller
        self._ssl_object = transport.get_extra_info("ssl_object")
        self._local = local
        self._peer = peer
        self._closed = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        protocol = self._protocol
        while not protocol.chunks and not protocol.eof and not protocol.lost:
            try:
                await protocol.wait(timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out waiting for data") from None
        if self._closed:
            raise httpcore.ReadError("connection closed")
        if protocol.chunks:
            return protocol.take(max_bytes)
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""  # the peer closed: h11 reports what that means at this point

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        protocol = self._protocol
        if self._closed or protocol.lost or self._transport.is_closing():
            raise httpcore.WriteError(str(protocol.error or "connection closed"))
        self._transport.write(buffer)
        while protocol.write_paused and not protocol.lost:
            try:
                await protocol.wait(timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out: the peer took no data") from None
        if protocol.lost and protocol.error is not None:
            raise httpcore.WriteError(str(protocol.error))

    async def aclose(self) -> None:
        # As anyio does: nothing left to send is worth waiting for, and a TLS
        # close() would wait up to 30s for the peer's close_notify, reading on.
        self._closed = True
        self._transport.abort()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._protocol, ssl_context, server_hostname=server_hostname,
                    # our own deadline must fire first, to be reported as a timeout
                    ssl_handshake_timeout=None if timeout is None else timeout + 1.0)
        except TimeoutError:
            await self.aclose()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except OSError as exc:  # ssl.SSLError is one: certificate, protocol
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from None
        except BaseException:
            await self.aclose()
            raise
        if transport is None:  # the connection was closed during the handshake
            await self.aclose()
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        self._protocol.use(transport)
        return _Stream(transport, self._protocol, self._sock, self._poller,
                       self._local, self._peer)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked of an idle connection before it is reused: anything to read
            # there means the peer closed it (or broke the protocol).
            protocol = self._protocol
            return bool(self._closed or protocol.chunks or protocol.eof or protocol.lost
                        or self._poller.ready())
        if info == "ssl_object":
            return self._ssl_object
        if info == "server_addr":
            return self._peer
        if info == "client_addr":
            return self._local
        if info == "socket":
            return self._sock
        return None

    @property
    def peer_ip(self) -> str:
        return str(self._peer[0])


class _Poller:
    """Whether the kernel holds unread bytes the event loop has not picked up yet.

    The event loop reads between callbacks; this covers a close that arrived
    since, with one poll() on a poll object registered once.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._poll: Any = None
        if hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(sock.fileno(), select.POLLIN)

    def ready(self) -> bool:
        if self._sock.fileno() < 0:
            return True
        if self._poll is not None:
            return bool(self._poll.poll(0))
        return bool(select.select([self._sock], [], [], 0)[0])


def _address(addr: Any) -> Any:
    # anyio's form, which httpcore's callers know: IPv6 without flow and scope.
    return tuple(addr[:2]) if isinstance(addr, tuple) else addr


async def _open(ip: str, port: int, local_address: str | None,
                socket_options: Iterable[Any] | None) -> _Stream:
    """A connection to exactly `ip`: the caller has vetted it; nothing resolves again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        for option in socket_options or ():
            sock.setsockopt(*option)
        if local_address:
            sock.bind((local_address, 0))
        await loop.sock_connect(sock, (ip, port))
        local, peer = _address(sock.getsockname()), _address(sock.getpeername())
        transport, protocol = await loop.create_connection(_Protocol, sock=sock)
    except BaseException:
        sock.close()
        raise
    return _Stream(transport, protocol, sock, _Poller(sock), local, peer)


def _reap(task: asyncio.Task[_Stream]) -> None:
    """Close what a losing connection attempt produced, once it is done."""
    if task.cancelled():
        return
    if task.exception() is None:
        task.result()._transport.abort()


async def _open_first(ips: list[str], port: int, local_address: str | None,
                      socket_options: Iterable[Any] | None) -> _Stream:
    """Happy eyeballs, as anyio did: a new attempt every 250 ms or on a failure."""
    if len(ips) == 1:
        return await _open(ips[0], port, local_address, socket_options)
    waiting = list(ips)
    running: set[asyncio.Task[_Stream]] = set()
    errors: list[OSError] = []
    try:
        while waiting or running:
            if waiting:
                running.add(asyncio.create_task(
                    _open(waiting.pop(0), port, local_address, socket_options)))
            done, running = await asyncio.wait(
                running, timeout=_ATTEMPT_DELAY_S if waiting else None,
                return_when=asyncio.FIRST_COMPLETED)
            winners = [task.result() for task in done if task.exception() is None]
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, OSError):
                    for stream in winners:
                        stream._transport.abort()
                    raise exc
                if exc is not None:
                    errors.append(exc)
            for stream in winners[1:]:
                stream._transport.abort()
            if winners:
                return winners[0]
        raise errors[-1]
    finally:
        for task in running:
            task.add_done_callback(_reap)
            task.cancel()


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections on asyncio transports; guarded, only to public addresses.

    The name is resolved here and the connection made to a vetted address, so
    no packet goes to a private one and a second DNS answer cannot differ from
    the one checked (DNS rebinding). The peer is checked again once connected.
    """

    def __init__(self, guarded: bool) -> None:
        self.guarded = guarded

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await _resolve(host, port)
                if self.guarded:
                    public = [a for a in addresses if is_public_address(a)]
                    if not public:
                        raise httpcore.ConnectError(
                            f"address {addresses[0] if addresses else '?'} of {host} "
                            "is not public; refused")
                    addresses = public
                if not addresses:
                    raise httpcore.ConnectError(f"cannot resolve {host}")
                stream = await _open_first(addresses, port, local_address, socket_options)
        except TimeoutError:  # ours, or the kernel's ETIMEDOUT
            raise httpcore.ConnectTimeout(f"cannot connect to {host}: timed out") from None
        except OSError as exc:
            raise httpcore.ConnectError(
                f"cannot connect to {host}: {exc.strerror or exc}") from None
        if self.guarded and not is_public_address(stream.peer_ip):
            await stream.aclose()
            raise httpcore.ConnectError(
                f"address {stream.peer_ip} of {host} is not public; refused")
        return stream

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_OriginKey = tuple[bytes, bytes, int]


class Pool:
    """Keep-alive HTTP/1.1 connections, in place of httpcore's AsyncConnectionPool.

    httpcore's pool rescans every connection (asking each idle one whether
    its socket is readable) several times per request, through anyio events
    that yield between choosing a connection and using it; under load other
    requests pick the same one meanwhile and the loser starts over. Here a
    request takes an idle connection for its origin, or opens one, and has it
    to itself until its response is closed; only that connection is checked.
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend, ssl_context: ssl.SSLContext,
                 limits: httpx.Limits) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        ssl_context.set_alpn_protocols(["http/1.1"])  # as httpcore: no HTTP/2
        self._max_connections = limits.max_connections or 2**31
        self._max_idle = (limits.max_keepalive_connections
                          if limits.max_keepalive_connections is not None else 2**31)
        self._keepalive_expiry = limits.keepalive_expiry
        self._slots = asyncio.Semaphore(self._max_connections)
        self._idle: list[tuple[_OriginKey, httpcore.AsyncHTTP11Connection]] = []  # oldest first
        self._open = 0
        self._next_sweep = 0.0
        self._closed = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        url = request.url
        if url.scheme not in (b"http", b"https"):
            raise httpcore.UnsupportedProtocol(
                f"Request URL has an unsupported protocol '{url.scheme.decode()}://'.")
        timeouts = request.extensions.get("timeout", {})
        await self._acquire(timeouts.get("pool"))
        try:
            origin = url.origin
            key = (origin.scheme, origin.host, origin.port)
            connection = await self._reuse(key)
            if connection is None:
                connection = await self._connect(origin, request, timeouts.get("connect"))
            try:
                response = await connection.handle_async_request(request)
            except BaseException:
                await self._drop(connection)  # the connection closed itself, unless cancelled
                raise
        except BaseException:
            self._slots.release()
            raise
        # An AsyncHTTP11Connection's body is always async; an isinstance check
        # against the ABC here cost about 1% of a cold cycle.
        stream = cast(AsyncIterable[bytes], response.stream)
        return httpcore.Response(status=response.status, headers=response.headers,
                                 content=Body(stream, self, key, connection),
                                 extensions=response.extensions)

    async def _acquire(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # returns at once: no timer needed
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpcore.PoolTimeout("no connection free in time") from None

    async def _reuse(self, key: _OriginKey) -> httpcore.AsyncHTTP11Connection | None:
        """An idle connection to the origin that the peer has not closed, newest first."""
        idle = self._idle
        found: httpcore.AsyncHTTP11Connection | None = None
        stale: list[httpcore.AsyncHTTP11Connection] = []
        for i in range(len(idle) - 1, -1, -1):
            if idle[i][0] == key:
                connection = idle.pop(i)[1]
                # has_expired(): past keepalive_expiry, or readable while idle (closed)
                if connection.is_idle() and not connection.has_expired():
                    found = connection
                    break
                stale.append(connection)
        for connection in stale:
            await self._drop(connection)
        return found

    async def _connect(self, origin: httpcore.Origin, request: httpcore.Request,
                       timeout: float | None) -> httpcore.AsyncHTTP11Connection:
        if self._open >= self._max_connections and self._idle:
            await self._drop(self._idle.pop(0)[1])  # room for one more, as httpcore does
        host = origin.host.decode("ascii")
        stream = await self._backend.connect_tcp(host, origin.port, timeout=timeout)
        self._open += 1
        try:
            if origin.scheme == b"https":
                sni = request.extensions.get("sni_hostname")
                stream = await stream.start_tls(self._ssl_context, server_hostname=sni or host,
                                                timeout=timeout)
        except BaseException:
            self._open -= 1
            await stream.aclose()
            raise
        return httpcore.AsyncHTTP11Connection(origin=origin, stream=stream,
                                              keepalive_expiry=self._keepalive_expiry)

    async def _drop(self, connection: httpcore.AsyncHTTP11Connection) -> None:
        self._open -= 1
        await connection.aclose()  # no await inside _Stream.aclose: cancellation cannot cut it

    async def _release(self, key: _OriginKey, connection: httpcore.AsyncHTTP11Connection) -> None:
        """The response is closed: keep the connection if it can serve another request."""
        try:
            if self._closed or not connection.is_idle() or connection.has_expired():
                await self._drop(connection)
                return
            if len(self._idle) >= self._max_idle:
                await self._drop(self._idle.pop(0)[1])
            self._idle.append((key, connection))
            now = time.monotonic()
            if now >= self._next_sweep:
                # Idle connections to hosts not asked again would otherwise keep
                # their sockets past keepalive_expiry, or after the peer closed.
                self._next_sweep = now + 1.0
                keep: list[tuple[_OriginKey, httpcore.AsyncHTTP11Connection]] = []
                expired: list[httpcore.AsyncHTTP11Connection] = []
                for entry in self._idle:
                    if entry[1].has_expired():
                        expired.append(entry[1])
                    else:
                        keep.append(entry)
                self._idle = keep
                for stale in expired:
                    await self._drop(stale)
        finally:
            self._slots.release()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for _, connection in idle:
            await self._drop(connection)

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Body:
    """A response body that gives its connection back to the pool when closed."""

    def __init__(self, stream: AsyncIterable[bytes], pool: Pool, key: _OriginKey,
                 connection: httpcore.AsyncHTTP11Connection) -> None:
        self._stream = stream
        self._pool = pool
        self._key = key
        self._connection = connection
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for part in self._stream:
                yield part
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._stream, "aclose", None)
            if aclose is not None:
                await aclose()  # leaves the connection idle, or closed if the body was cut
        finally:
            await self._pool._release(self._key, self._connection)
