"""Connections on asyncio transports, made to vetted addresses only.

httpcore speaks HTTP/1.1 over these streams; this network backend takes the
place of httpcore's own, whose anyio cancel scopes on every read and write cost
more under load than all of h11 (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import collections
import select
import socket
import ssl
from collections.abc import Iterable
from typing import Any, cast

import httpcore

from watcher.fetch.guard import is_public_address, resolve

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
                addresses = await resolve(host, port)
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

