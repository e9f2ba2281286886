"""Page extraction in a pool of processes: it is CPU-bound, and the GIL would
otherwise keep it on one core. A page that takes too long is cut off (its
worker killed) and the article falls back to the feed's own text.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

from watcher.errors import ExtractError
from watcher.extract import extract_page
from watcher.identity import signature, to_bytes
from watcher.models import Extracted

log = logging.getLogger("watcher.extract")


def extract_and_sign(body: bytes, url: str | None, content_type: str | None) -> Extracted:
    """Extraction plus the text's MinHash signature, both CPU work for the workers."""
    extracted = extract_page(body, url, content_type)
    sig = signature(extracted.text) if extracted.text else None
    return replace(extracted, signature=to_bytes(sig)) if sig is not None else extracted


def _warm() -> None:
    import trafilatura  # noqa: F401  (load it once per worker, before the first page)


class ExtractPool:
    """`await pool.extract(...)`; the processes start on first use, not before."""

    def __init__(self, workers: int | None = None, timeout_s: float = 20.0,
                 in_process: bool = False, spawn_at: int = 8,
                 func: Callable[[bytes, str | None, str | None], Extracted] = extract_and_sign
                 ) -> None:
        self.func = func  # a module-level function: workers import it by name
        self.workers = workers or max(os.cpu_count() or 1, 1)
        self.timeout_s = timeout_s
        # in_process: always extract on a thread of this process.
        self.in_process = in_process
        # Starting the workers costs a second or two: a handful of pages at a time
        # are extracted in-process; a backlog of `spawn_at` starts the pool.
        self.spawn_at = spawn_at
        self._pending = 0
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: workers do not inherit the event loop's threads and sockets.
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context,
                                             initializer=_warm)
        return self._pool

    def _kill(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.kill()  # the only way to stop a worker stuck on one page
        pool.shutdown(wait=False, cancel_futures=True)

    async def extract(self, body: bytes, url: str | None, content_type: str | None
                      ) -> Extracted:
        self._pending += 1
        try:
            return await self._extract(body, url, content_type)
        finally:
            self._pending -= 1

    async def _extract(self, body: bytes, url: str | None, content_type: str | None
                       ) -> Extracted:
        if self.in_process or (self._pool is None and self._pending < self.spawn_at):
            try:
                return await asyncio.wait_for(
                    asyncio.to_thread(self.func, body, url, content_type), self.timeout_s)
            except TimeoutError:
                # A thread cannot be stopped; it finishes in the background.
                raise ExtractError(f"{url or 'page'}: extraction took longer than "
                                   f"{self.timeout_s:g}s; gave up") from None
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor(), self.func, body, url,
                                          content_type)
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            log.warning("extract: %s took longer than %gs; worker stopped", url,
                        self.timeout_s)
            self._kill()
            raise ExtractError(f"{url or 'page'}: extraction took longer than "
                               f"{self.timeout_s:g}s; cut off") from None
        except BrokenProcessPool:
            self._kill()
            raise ExtractError(f"{url or 'page'}: the extraction worker died") from None

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
