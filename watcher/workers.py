"""Page extraction in a pool of processes: it is CPU-bound, and the GIL would
otherwise keep it on one core. A page that takes too long is cut off (its
worker killed and replaced) and the article falls back to the feed's own text.

Each worker has its own socket, read by the event loop. concurrent.futures'
process pool cost the main process about 0.8 ms of CPU a page in its feeder and
manager threads (pickling, GIL hand-offs, waking the loop from another thread);
a length-prefixed frame on a socket costs a tenth of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.process import BaseProcess
from typing import Any

from watcher.errors import ExtractError
from watcher.extract import extract_page
from watcher.identity import signature, to_bytes
from watcher.models import Extracted

log = logging.getLogger("watcher.extract")

ExtractFunc = Callable[[bytes, str | None, str | None], Extracted]
_HEADER = struct.Struct("!I")
# Pages sent ahead to each worker. The event loop stalls for tens of milliseconds
# while it stores and matches a feed's articles; a worker with only its current
# page and the next sat idle for half of a cold cycle.
_DEPTH = 8
# Room in the kernel for those pages (a page is 20 to 150 KB); the kernel may cap it.
_SEND_BUFFER = 4 << 20
# A worker imports trafilatura before it says it is ready; a page's time limit
# starts only then. A worker that never gets ready is given up after this long.
_START_TIMEOUT_S = 120.0
_READY = b"ready"


def extract_and_sign(body: bytes, url: str | None, content_type: str | None) -> Extracted:
    """Extraction plus the text's MinHash signature, both CPU work for the workers."""
    extracted = extract_page(body, url, content_type)
    sig = signature(extracted.text) if extracted.text else None
    return replace(extracted, signature=to_bytes(sig)) if sig is not None else extracted


# --- the worker process ---------------------------------------------------------------


def _read_exactly(stream: Any, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def _answer(func: ExtractFunc, request: bytes) -> bytes:
    body, url, content_type = pickle.loads(request)
    started = time.process_time()
    status: str = "ok"
    try:
        value: Any = func(body, url, content_type)
    except ExtractError as exc:
        status, value = "error", str(exc)
    except Exception as exc:  # a bug on one page must cost that page only
        status, value = "error", (f"{url or 'page'}: extraction failed: "
                                  f"{type(exc).__name__}: {exc}")
    return pickle.dumps((status, value, time.process_time() - started),
                        protocol=pickle.HIGHEST_PROTOCOL)


def _serve(sock: socket.socket, func: ExtractFunc) -> None:
    """Worker main loop: one frame in, one frame out, until the socket closes."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the
    # daemon decides what stops, and finishes the pages under way while it drains.
    # It stops a worker with SIGKILL; a worker whose daemon is gone sees its socket end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import trafilatura  # noqa: F401  (loaded before the first page's clock starts)

    gc.freeze()  # the modules stay for the worker's life: no collection need walk them

    with sock, sock.makefile("rb") as rfile, sock.makefile("wb") as wfile:
        try:
            wfile.write(_HEADER.pack(len(_READY)) + _READY)
            wfile.flush()
            while (header := _read_exactly(rfile, _HEADER.size)) is not None:
                request = _read_exactly(rfile, _HEADER.unpack(header)[0])
                if request is None:
                    return
                answer = _answer(func, request)
                wfile.write(_HEADER.pack(len(answer)) + answer)
                wfile.flush()
        except OSError:
            return  # the daemon went away mid-answer: nothing left to do


# --- the pool, in the daemon's process ------------------------------------------------


@dataclass(eq=False)
class _Job:
    request: bytes
    url: str | None
    future: asyncio.Future[Extracted]


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    ready: bool = False
    inflight: deque[_Job] = field(default_factory=deque)
    timer: asyncio.TimerHandle | None = None  # the time limit of its oldest page
    expired: _Job | None = None  # the page it was killed over
    task: asyncio.Task[None] | None = None


class ExtractPool:
    """`await pool.extract(...)`; the processes start on first use, not before."""

    def __init__(self, workers: int | None = None, timeout_s: float = 20.0,
                 in_process: bool = False, spawn_at: int = 8,
                 func: ExtractFunc = extract_and_sign) -> None:
        self.func = func  # a module-level function: workers import it by name
        self.workers = workers or max(os.cpu_count() or 1, 1)
        self.timeout_s = timeout_s
        # in_process: always extract on a thread of this process.
        self.in_process = in_process
        # Starting the workers costs a second or two: a handful of pages at a time
        # are extracted in-process; a backlog of `spawn_at` starts the pool.
        self.spawn_at = spawn_at
        self._pending = 0
        self._started = False
        self._closed = False
        self._queue: deque[_Job] = deque()
        self._pool: list[_Worker] = []
        self._spawning = 0
        # CPU seconds the workers spent inside `func`, and pages they answered:
        # what extraction itself costs, apart from the hand-off.
        self.worker_cpu_s = 0.0
        self.worker_pages = 0

    def expect(self, pages: int) -> None:
        """`pages` new pages are on their way. A backlog that size starts the workers
        now, while the pages are fetched, and none of them is extracted in-process
        (which would also load trafilatura into this process for nothing)."""
        if self.in_process or self._started or self._closed or pages < self.spawn_at:
            return
        self._started = True
        task = asyncio.get_running_loop().create_task(self._fill())
        task.add_done_callback(_log_failure)

    async def extract(self, body: bytes, url: str | None, content_type: str | None
                      ) -> Extracted:
        self._pending += 1
        try:
            if self.in_process or (not self._started and self._pending < self.spawn_at):
                return await self._in_thread(body, url, content_type)
            return await self._in_worker(body, url, content_type)
        finally:
            self._pending -= 1

    async def _in_thread(self, body: bytes, url: str | None, content_type: str | None
                         ) -> Extracted:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(self.func, body, url, content_type), self.timeout_s)
        except TimeoutError:
            # A thread cannot be stopped; it finishes in the background.
            raise ExtractError(f"{url or 'page'}: extraction took longer than "
                               f"{self.timeout_s:g}s; gave up") from None

    async def _in_worker(self, body: bytes, url: str | None, content_type: str | None
                         ) -> Extracted:
        if self._closed:
            raise ExtractError(f"{url or 'page'}: the extraction pool is closed")
        self._started = True
        request = pickle.dumps((body, url, content_type), protocol=pickle.HIGHEST_PROTOCOL)
        job = _Job(request, url, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        await self._fill()
        return await job.future

    async def _fill(self) -> None:
        """Start missing workers, then hand queued pages to the least busy ones."""
        while len(self._pool) + self._spawning < self.workers and not self._closed:
            self._spawning += 1
            try:
                self._pool.append(await self._spawn())
            except Exception as exc:  # no worker: the pages fall back, nothing crashes
                log.error("extract: could not start a worker: %s", exc)
                self._fail_queue(f"could not start an extraction worker: {exc}")
                return
            finally:
                self._spawning -= 1
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue:
            ready = [w for w in self._pool if w.ready and len(w.inflight) < _DEPTH]
            if not ready:
                return
            worker = min(ready, key=lambda w: len(w.inflight))
            job = self._queue.popleft()
            if job.future.done():  # its caller gave up waiting
                continue
            worker.inflight.append(job)
            worker.writer.write(_HEADER.pack(len(job.request)) + job.request)
            if len(worker.inflight) == 1:
                self._arm(worker)

    def _arm(self, worker: _Worker) -> None:
        """Start the time limit of the page the worker is now on."""
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        if worker.inflight:
            worker.timer = asyncio.get_running_loop().call_later(
                self.timeout_s, self._expire, worker, self.timeout_s)

    def _expire(self, worker: _Worker, limit_s: float) -> None:
        worker.timer = None
        worker.expired = worker.inflight[0]
        log.warning("extract: %s took longer than %gs; worker stopped",
                    worker.expired.url, limit_s)
        # The only way to stop a worker stuck on one page; its reader sees the end.
        worker.process.kill()
        _fail(worker.expired, f"{worker.expired.url or 'page'}: extraction took longer "
                              f"than {limit_s:g}s; cut off")

    async def _spawn(self) -> _Worker:
        context = multiprocessing.get_context("forkserver")
        # forkserver: workers do not inherit the event loop's threads and sockets.
        # Preloaded there, trafilatura is imported once, not once per worker.
        context.set_forkserver_preload(["watcher.workers", "trafilatura"])
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        try:
            process = context.Process(target=_serve, args=(theirs, self.func),
                                      name="watcher-extract", daemon=True)
            # The first start waits for the forkserver to import trafilatura: half
            # a second the event loop must not spend blocked.
            await asyncio.to_thread(process.start)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        worker = _Worker(process, reader, writer)
        worker.task = asyncio.get_running_loop().create_task(
            self._run(worker), name=f"extract-worker-{process.pid}")
        return worker

    async def _run(self, worker: _Worker) -> None:
        try:
            try:
                async with asyncio.timeout(_START_TIMEOUT_S):
                    await _read_frame(worker.reader)  # the worker's "ready"
            except (TimeoutError, asyncio.IncompleteReadError, OSError) as exc:
                # Without a working worker, waiting pages would wait forever: they
                # fail now, and the next page tries to start a worker again.
                why = "timed out" if isinstance(exc, TimeoutError) else "exited"
                self._retire(worker, restart=False)
                self._fail_queue(f"the extraction worker {why} while starting")
                return
            worker.ready = True
            self._dispatch()
            while True:
                answer = await _read_frame(worker.reader)
                self._answered(worker, answer)
                self._dispatch()
        except (asyncio.IncompleteReadError, OSError):
            if worker.expired is not None:
                # Killed by its time limit: that page has failed already (unless
                # its answer slipped in first), and the rest were not at fault.
                if worker.expired in worker.inflight:
                    worker.inflight.remove(worker.expired)
            elif worker.inflight and not self._closed:
                job = worker.inflight.popleft()
                _fail(job, f"{job.url or 'page'}: the extraction worker died")
            self._retire(worker, restart=not self._closed)
        except asyncio.CancelledError:
            self._retire(worker, restart=False)
            raise

    def _answered(self, worker: _Worker, answer: bytes) -> None:
        job = worker.inflight.popleft()
        self._arm(worker)
        status, value, cpu_s = pickle.loads(answer)
        self.worker_cpu_s += cpu_s
        self.worker_pages += 1
        if job.future.done():
            return
        if status == "ok":
            job.future.set_result(value)
        else:
            job.future.set_exception(ExtractError(value))

    def _retire(self, worker: _Worker, restart: bool) -> None:
        """Kill the worker; pages it had not begun go back to the front of the queue."""
        if worker in self._pool:
            self._pool.remove(worker)
        if worker.timer is not None:
            worker.timer.cancel()
        _kill(worker.process)
        worker.writer.close()
        self._queue.extendleft(reversed(worker.inflight))
        worker.inflight.clear()
        if self._closed:
            self._fail_queue("the extraction pool is closed")
        elif restart and self._queue:
            task = asyncio.get_running_loop().create_task(self._fill())
            task.add_done_callback(_log_failure)

    def _fail_queue(self, reason: str) -> None:
        while self._queue:
            job = self._queue.popleft()
            _fail(job, f"{job.url or 'page'}: {reason}")

    def close(self) -> None:
        """Stop the workers. Safe from any thread; pages still waiting fail."""
        self._closed = True
        workers, self._pool = self._pool, []
        for worker in workers:
            _kill(worker.process)
            if worker.task is not None:
                with contextlib.suppress(RuntimeError):  # its loop has already ended
                    worker.task.get_loop().call_soon_threadsafe(worker.task.cancel)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    header = await reader.readexactly(_HEADER.size)
    return await reader.readexactly(_HEADER.unpack(header)[0])


def _fail(job: _Job, message: str) -> None:
    if not job.future.done():
        job.future.set_exception(ExtractError(message))


def _kill(process: BaseProcess) -> None:
    with contextlib.suppress(ValueError):  # already closed
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        process.close()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("extract: could not restart a worker: %s", task.exception())
