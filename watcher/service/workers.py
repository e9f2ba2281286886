"""Page extraction in a pool of processes: it is CPU-bound, and the GIL would
otherwise keep it on one core. A page that takes too long is cut off (its
worker killed and replaced) and the article falls back to the feed's own text.

Each worker (watcher.service.extract_worker) has its own socket, read by the
event loop: concurrent.futures' process pool cost the main process far more CPU
a page in its feeder and manager threads (pickling, GIL hand-offs, waking the
loop from another thread) than a length-prefixed frame on a socket does.

The sockets are plain non-blocking ones rather than asyncio streams, so that
`pump()` can also serve them between two articles of a feed's store-and-match
batch, while the event loop cannot run.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import socket
from collections import deque

from watcher.core.errors import ExtractError
from watcher.core.models import Entry, Extracted, Undecoded
from watcher.extract.page import extract_page
from watcher.service.extract_worker import (
    HEADER,
    ExtractFunc,
    decode_and_run,
    serve,
)
from watcher.service.extract_worker import kill as _kill
from watcher.service.frames import Job, Worker, fail, send

log = logging.getLogger("watcher.service.workers")

# Pages sent ahead to each worker: what it works on while the daemon's process is
# busy elsewhere. Those behind a page found slow are sent to other workers too.
_DEPTH = 8
# One recv() takes in whatever answers are waiting (an answer is a few KB).
_RECV_SIZE = 1 << 18
# Room in the kernel for those pages (a page is tens of KB); the kernel may cap it.
_SEND_BUFFER = 4 << 20
# A worker imports trafilatura before it says it is ready; a page's time limit
# starts only then. A worker that never gets ready is given up after this long.
_START_TIMEOUT_S = 120.0
# A page still being extracted after this long is slow: the pages sent behind it go
# to other workers too (whichever answers first counts), and more workers start if
# none is free, so that several slow pages are cut off side by side, not in turn.
_SLOW_S = 1.0
# A worker started for slow pages stops after this long without a page.
_IDLE_S = 30.0


class ExtractPool:
    """`await pool.extract(...)`; the processes start on first use, not before."""

    def __init__(self, workers: int | None = None, timeout_s: float = 20.0,
                 in_process: bool = False, spawn_at: int = 8,
                 func: ExtractFunc = extract_page, max_workers: int | None = None,
                 recycle_after: int = 2000) -> None:
        self.func = func  # a module-level function: workers import it by name
        self.workers = workers or max(os.cpu_count() or 1, 1)
        # while pages are slow, up to this many (the extra ones stop when idle)
        self.max_workers = max(max_workers or 4 * self.workers, self.workers)
        self.timeout_s = timeout_s
        # A worker is replaced after this many pages (0: never): whatever a library
        # keeps from page to page, a process's memory grows back only so far.
        self.recycle_after = recycle_after
        self.recycled = 0  # workers retired after their recycle_after pages
        # in_process: always extract on a thread of this process.
        self.in_process = in_process
        # Starting the workers costs a second or two: a handful of pages at a time
        # are extracted in-process; a backlog of `spawn_at` starts the pool.
        self.spawn_at = spawn_at
        self._pending = 0
        self._started = False
        self._closed = False
        self._queue: deque[Job] = deque()
        self._pool: list[Worker] = []
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

    async def extract(self, body: bytes, url: str | None, content_type: str | None,
                      undecoded: Undecoded | None = None,
                      entry: Entry | None = None, key: str | None = None) -> Extracted:
        """The page's text; `undecoded` when the fetcher kept the body compressed.

        With the feed's `entry`, the answer also says which text the article keeps
        and carries its signature (`kept`), made where the page was extracted. Pages
        of one `key` (a feed) hold at most half the workers, so that a feed of slow
        pages never keeps the others' pages waiting.
        """
        self._pending += 1
        try:
            if self.in_process or (not self._started and self._pending < self.spawn_at):
                return await self._in_thread(body, url, content_type, undecoded, entry)
            return await self._in_worker(body, url, content_type, undecoded, entry, key)
        finally:
            self._pending -= 1

    async def _in_thread(self, body: bytes, url: str | None, content_type: str | None,
                         undecoded: Undecoded | None, entry: Entry | None) -> Extracted:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(decode_and_run, self.func, body, url, content_type,
                                  undecoded, entry), self.timeout_s)
        except TimeoutError:
            # A thread cannot be stopped; it finishes in the background.
            raise ExtractError(f"{url or 'page'}: extraction took longer than "
                               f"{self.timeout_s:g}s; gave up") from None

    async def _in_worker(self, body: bytes, url: str | None, content_type: str | None,
                         undecoded: Undecoded | None, entry: Entry | None,
                         key: str | None) -> Extracted:
        if self._closed:
            raise ExtractError(f"{url or 'page'}: the extraction pool is closed")
        self._started = True
        request = pickle.dumps((body, url, content_type, undecoded, entry),
                               protocol=pickle.HIGHEST_PROTOCOL)
        job = Job(HEADER.pack(len(request)) + request, url,
                   asyncio.get_running_loop().create_future(), key=key)
        self._queue.append(job)
        await self._fill()
        return await job.future

    async def _fill(self) -> None:
        """Start missing workers, then hand queued pages to the least busy ones."""
        while self._live() + self._spawning < self.workers and not self._closed:
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

    def _next_job(self, take: bool) -> Job | None:
        """The first queued page whose key is under its share of the workers; jobs
        whose callers gave up are dropped on the way."""
        share = max(self.max_workers // 2, 1)
        held: dict[str | None, int] = {}  # key -> workers extracting one of its pages
        for w in self._pool:
            if w.inflight:
                held[w.inflight[0].key] = held.get(w.inflight[0].key, 0) + 1
        i = 0
        while i < len(self._queue):
            job = self._queue[i]
            if job.future.done():
                del self._queue[i]
                continue
            if job.key is None or held.get(job.key, 0) < share:
                if take:
                    del self._queue[i]
                return job
            i += 1
        return None

    def _dispatch(self) -> None:
        while self._queue:
            ready = [w for w in self._pool
                     if w.ready and not w.slow and not w.draining and len(w.inflight) < _DEPTH]
            if not ready:
                if self._next_job(take=False) is not None:
                    self._grow()
                return
            worker = min(ready, key=lambda w: len(w.inflight))
            job = self._next_job(take=True)
            if job is None:
                return
            worker.inflight.append(job)
            if worker.idle_timer is not None:
                worker.idle_timer.cancel()
                worker.idle_timer = None
            send(worker, job.frame)
            if len(worker.inflight) == 1:
                self._arm(worker)
            worker.sent += 1
            if self.recycle_after and worker.sent >= self.recycle_after:
                self._drain(worker)

    def _live(self) -> int:
        """Workers that take pages: not those finishing their last ones."""
        return sum(not w.draining for w in self._pool)

    def _drain(self, worker: Worker) -> None:
        """The worker has been sent its last page: it finishes those it holds and is
        then stopped, while its replacement starts now, so that no page waits for it."""
        worker.draining = True
        self.recycled += 1
        task = asyncio.get_running_loop().create_task(self._fill())
        task.add_done_callback(_log_failure)

    def _grow(self) -> None:
        """Pages wait and every worker is busy on a slow one: start one more."""
        busy = [w for w in self._pool if w.ready and not w.draining]
        if (self._closed or not busy or not all(w.slow for w in busy) or self._spawning
                or len(self._pool) >= self.max_workers):
            return
        self._spawning += 1

        async def start() -> None:
            try:
                self._pool.append(await self._spawn())
            finally:
                self._spawning -= 1
        task = asyncio.get_running_loop().create_task(start())
        task.add_done_callback(_log_failure)

    def _slow(self, worker: Worker, job: Job) -> None:
        """The worker's page has run long: what it holds behind it goes elsewhere too."""
        worker.slow_timer = None
        if not worker.inflight or worker.inflight[0] is not job:
            return
        worker.slow = True
        behind = [j for j in list(worker.inflight)[1:] if not j.copied and not j.future.done()]
        for j in reversed(behind):
            # The copy answers for it now: if this worker dies, it is not queued again.
            j.copied = True
            self._queue.appendleft(Job(j.frame, j.url, j.future, key=j.key))
        self._dispatch()
        if not self._queue:
            self._grow()  # a second slow page should not have to wait for a worker

    def _retire_idle(self, worker: Worker) -> None:
        worker.idle_timer = None
        if not worker.inflight and self._live() > self.workers:
            self._retire(worker, restart=False)

    def pump(self) -> None:
        """Take in the answers waiting on the workers' sockets and send them more
        pages, without the event loop. For code that keeps the loop busy for long
        (a feed's articles stored in one transaction): the workers would otherwise
        finish the pages they hold and wait. The answers' awaiters resume once the
        loop runs again."""
        if not self._pool:
            return
        for worker in list(self._pool):
            self._receive(worker)
        self._dispatch()

    def _arm(self, worker: Worker) -> None:
        """Start the time limit of the page the worker is now on: its deadline counts
        from when its extraction starts, not from when it was queued."""
        for timer in (worker.timer, worker.slow_timer):
            if timer is not None:
                timer.cancel()
        worker.timer = worker.slow_timer = None
        worker.slow = False
        if worker.inflight:
            worker.timer = worker.loop.call_later(
                self.timeout_s, self._expire, worker, self.timeout_s)
            worker.slow_timer = worker.loop.call_later(
                _SLOW_S, self._slow, worker, worker.inflight[0])
        elif self._live() > self.workers and worker.ready and not worker.draining:
            worker.idle_timer = worker.loop.call_later(_IDLE_S, self._retire_idle, worker)

    def _expire(self, worker: Worker, limit_s: float) -> None:
        worker.timer = None
        worker.expired = worker.inflight[0]
        log.warning("extract: %s took longer than %gs; worker stopped",
                    worker.expired.url, limit_s)
        # The only way to stop a worker stuck on one page; its socket then ends.
        worker.process.kill()
        fail(worker.expired, f"{worker.expired.url or 'page'}: extraction took longer "
                              f"than {limit_s:g}s; cut off")

    async def _spawn(self) -> Worker:
        context = multiprocessing.get_context("forkserver")
        # forkserver: workers do not inherit the event loop's threads and sockets.
        # Preloaded there, trafilatura and the signatures' numpy (core.identity, which
        # keep_text imports on first use) are imported once, not once per worker.
        context.set_forkserver_preload(["watcher.service.extract_worker",
                                        "watcher.core.identity", "trafilatura"])
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        try:
            process = context.Process(target=serve, args=(theirs, self.func),
                                      name="watcher-extract", daemon=True)
            # The first start waits for the forkserver to import trafilatura: half
            # a second the event loop must not spend blocked.
            await asyncio.to_thread(process.start)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        worker = Worker(process, ours, loop)
        worker.timer = loop.call_later(_START_TIMEOUT_S, self._start_failed, worker,
                                       "timed out")
        loop.add_reader(ours.fileno(), self._readable, worker)
        return worker

    def _readable(self, worker: Worker) -> None:
        self._receive(worker)
        self._dispatch()

    def _receive(self, worker: Worker) -> None:
        """Read what the worker has sent and act on every whole frame in it."""
        while not worker.retired:
            try:
                data = worker.sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._lost(worker)
                return
            buffer = worker.received
            buffer += data
            start = 0
            while len(buffer) - start >= HEADER.size:
                end = start + HEADER.size + HEADER.unpack_from(buffer, start)[0]
                if len(buffer) < end:
                    break
                frame = buffer[start + HEADER.size:end]  # one copy; pickle reads it as is
                start = end
                if worker.retired:
                    return  # recycled after its last answer
                if worker.ready:
                    self._answered(worker, frame)
                else:  # its first frame says it has imported trafilatura
                    worker.ready = True
                    self._arm(worker)  # ends the limit on its start
                    _log_pruning(worker, frame)
            del buffer[:start]
            if len(data) < _RECV_SIZE:
                return

    def _start_failed(self, worker: Worker, why: str) -> None:
        """Without a working worker, waiting pages would wait forever: they fail
        now, and the next page tries to start a worker again."""
        worker.timer = None
        self._retire(worker, restart=False)
        self._fail_queue(f"the extraction worker {why} while starting")

    def _lost(self, worker: Worker) -> None:
        """The worker's socket ended: it died, or was killed over a page."""
        if worker.retired:
            return
        if not worker.ready:
            self._start_failed(worker, "exited")
            return
        if worker.expired is not None:
            # Killed by its time limit: that page has failed already (unless its
            # answer slipped in first), and the rest were not at fault.
            if worker.expired in worker.inflight:
                worker.inflight.remove(worker.expired)
        elif worker.inflight and not self._closed:
            job = worker.inflight.popleft()
            fail(job, f"{job.url or 'page'}: the extraction worker died")
        self._retire(worker, restart=not self._closed)

    def _answered(self, worker: Worker, answer: bytearray) -> None:
        job = worker.inflight.popleft()
        self._arm(worker)
        if worker.draining and not worker.inflight:
            self._retire(worker, restart=True)  # its last page: it has done its share
        status, value, cpu_s = pickle.loads(answer)
        self.worker_cpu_s += cpu_s
        self.worker_pages += 1
        if job.future.done():
            return
        if status == "ok":
            job.future.set_result(value)
        else:
            job.future.set_exception(ExtractError(value))

    def _retire(self, worker: Worker, restart: bool) -> None:
        """Kill the worker; pages it had not begun go back to the front of the queue."""
        if worker.retired:
            return
        worker.retired = True
        if worker in self._pool:
            self._pool.remove(worker)
        for timer in (worker.timer, worker.slow_timer, worker.idle_timer):
            if timer is not None:
                timer.cancel()
        _kill(worker.process)
        worker.loop.remove_reader(worker.sock.fileno())
        worker.loop.remove_writer(worker.sock.fileno())
        worker.sock.close()
        # A page also sent elsewhere (behind a slow one) is that copy's to answer.
        self._queue.extendleft(reversed([j for j in worker.inflight
                                         if not j.copied and not j.future.done()]))
        worker.inflight.clear()
        if self._closed:
            self._fail_queue("the extraction pool is closed")
        elif restart and self._queue:
            task = asyncio.get_running_loop().create_task(self._fill())
            task.add_done_callback(_log_failure)

    def _fail_queue(self, reason: str) -> None:
        while self._queue:
            job = self._queue.popleft()
            fail(job, f"{job.url or 'page'}: {reason}")

    def close(self) -> None:
        """Stop the workers. Safe from any thread; pages still waiting fail."""
        self._closed = True
        for worker in list(self._pool):
            _kill(worker.process)
            try:  # the sockets and pages belong to the loop's thread
                worker.loop.call_soon_threadsafe(self._retire, worker, False)
            except RuntimeError:  # its loop has already ended: nothing waits on it
                worker.retired = True
                worker.sock.close()
        self._pool = []


def _log_pruning(worker: Worker, frame: bytearray) -> None:
    """One line per worker start: trafilatura's pruning expressions it runs in Python.
    Those left to libxml2 cost pages several times the CPU: a trafilatura release that
    changed them is said so, not found in the figures later."""
    installed, version = pickle.loads(frame)
    pid = worker.process.pid
    if installed.complete:
        log.info("extract: worker %s runs all %d of trafilatura %s's pruning expressions "
                 "in Python", pid, installed.total, version)
        return
    log.warning("extract: worker %s runs %d of trafilatura %s's %d pruning expressions in "
                "Python; left to libxml2 (slower pages): %s%s", pid, installed.replaced,
                version, installed.total, "; ".join(" ".join(p.split()) for p in installed.left),
                f"; lists gone: {', '.join(installed.missing)}" if installed.missing else "")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("extract: could not restart a worker: %s", task.exception())
