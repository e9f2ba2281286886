"""Keep-alive HTTP/1.1 connections, in place of httpcore's connection pool."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import cast

import httpcore

from watcher.fetch.httpx_lib import httpx

_OriginKey = tuple[bytes, bytes, int]
_HTTPCORE_LOCK = httpcore._synchronization.AsyncLock


class _StateLock:
    """What httpcore's AsyncLock offers an HTTP/1.1 connection, on asyncio's own lock."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> _StateLock:
        await self._lock.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()


class Pool:
    """Keep-alive HTTP/1.1 connections, in place of httpcore's AsyncConnectionPool.

    httpcore's pool rescans every connection (asking each idle one whether
    its socket is readable) several times per request, through anyio events
    that yield between choosing a connection and using it; under load other
    requests pick the same one meanwhile and the loser starts over. Here a
    request takes an idle connection for its origin, or opens one, and has it
    to itself until its response is closed; only that connection is checked.
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend,
                 ssl_context: Callable[[], ssl.SSLContext], limits: httpx.Limits) -> None:
        self._backend = backend
        # made at the first https connection: loading the system's certificates is a
        # visible share of a short run's start-up, and an http-only run needs none
        self._make_ssl_context = ssl_context
        self._ssl_context: ssl.SSLContext | None = None
        self._max_connections = limits.max_connections or 2**31
        self._max_idle = (limits.max_keepalive_connections
                          if limits.max_keepalive_connections is not None else 2**31)
        self._keepalive_expiry = limits.keepalive_expiry
        self._slots = asyncio.Semaphore(self._max_connections)
        self._idle: list[tuple[_OriginKey, httpcore.AsyncHTTP11Connection]] = []  # oldest first
        self._open = 0
        self._next_sweep = 0.0
        self._closed = False

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = self._make_ssl_context()
            self._ssl_context.set_alpn_protocols(["http/1.1"])  # as httpcore: no HTTP/2
        return self._ssl_context

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
        # against the ABC here showed in the cold cycle's profile.
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
                stream = await stream.start_tls(self._ssl(), server_hostname=sni or host,
                                                timeout=timeout)
        except BaseException:
            self._open -= 1
            await stream.aclose()
            raise
        connection = httpcore.AsyncHTTP11Connection(origin=origin, stream=stream,
                                                    keepalive_expiry=self._keepalive_expiry)
        if isinstance(getattr(connection, "_state_lock", None), _HTTPCORE_LOCK):
            # httpcore's lock is anyio's under asyncio: its first use loads anyio's
            # asyncio backend at every start; the connection is ours alone anyway
            connection._state_lock = _StateLock()  # type: ignore[assignment]
        return connection

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
