"""The daemon's feed workers, and what it knows of the database's health.

A scheduler tick only hands due feeds to the queue and returns: a feed whose
pages hang, or that brings thousands of entries, holds one worker, never the
tick, and never the other feeds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.core.errors import StoreError

log = logging.getLogger("watcher.service.polling")


class FeedQueue:
    """Feeds waiting to be polled and the workers polling them, at most `workers`
    at once. A feed already queued or being polled is not queued again."""

    def __init__(self, run: Callable[[str], Awaitable[object]], workers: int,
                 on_room: Callable[[int], None] | None = None) -> None:
        self._run = run
        self._workers = max(workers, 1)
        # Told when half the workers or more are idle with nothing queued: a daemon
        # sharing its database claims only what it can start, and more as room frees.
        self._on_room = on_room
        self._queue: deque[tuple[str, asyncio.Future[object]]] = deque()
        self._pending: set[str] = set()  # queued or being polled
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> frozenset[str]:
        return frozenset(self._pending)

    @property
    def room(self) -> int:
        """How many more feeds would start at once."""
        return max(self._workers - len(self._pending), 0)

    def submit(self, names: Iterable[str]) -> list[asyncio.Future[object]]:
        """Queue the feeds not already pending; the futures of those queued."""
        loop = asyncio.get_running_loop()
        futures = []
        for name in names:
            if name in self._pending:
                continue
            self._pending.add(name)
            future: asyncio.Future[object] = loop.create_future()
            self._queue.append((name, future))
            futures.append(future)
        while self._queue and len(self._tasks) < self._workers:
            task = loop.create_task(self._work())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return futures

    async def _work(self) -> None:
        while self._queue:
            name, future = self._queue.popleft()
            try:
                outcome = await self._run(name)
            except BaseException as exc:  # cancelled at shutdown, or a bug in `run`
                if not future.done():
                    future.set_exception(exc)
                raise
            finally:
                self._pending.discard(name)
            if not future.done():
                future.set_result(outcome)
            if self._on_room is not None and not self._queue \
                    and self.room >= max(self._workers // 2, 1):
                self._on_room(self.room)

    def cancel_queued(self) -> None:
        """Stopping: feeds not yet started are not started (they stay due)."""
        while self._queue:
            name, future = self._queue.popleft()
            self._pending.discard(name)
            future.cancel()


@dataclass
class StorageHealth:
    """Whether the database takes writes, as the daemon last found it.

    A failure is logged once when it starts and once when it ends, not once per
    feed and tick; while it lasts, polls wait with a growing backoff (work fetched
    but not stored is fetched again: a feed's poll is recorded only once its
    articles are stored), and /healthz answers 503 with the reason.
    """

    clock: Callable[[], datetime]
    base_s: float = 5.0
    max_s: float = 300.0
    # A database that flaps (connections cut every few seconds) would otherwise log
    # a pause and a resume per flap: a failure this soon after a recovery is logged
    # only if it lasts this long.
    quiet_s: float = 60.0
    problem: str | None = None
    since: datetime | None = None
    retry_at: datetime | None = None
    _failures: int = field(default=0, repr=False)
    _announced: bool = field(default=False, repr=False)
    _recovered_at: datetime | None = field(default=None, repr=False)

    def failed(self, exc: StoreError) -> None:
        now = self.clock()
        log.debug("%s (storage still failing)", exc)
        if self.problem is None:
            self.since = now
            flapping = (self._recovered_at is not None
                        and (now - self._recovered_at).total_seconds() < self.quiet_s)
            if not flapping:
                self._failures = 0
        self.problem = str(exc)
        if self.retry_at is None or now >= self.retry_at:  # else: the same round, one step
            self._failures += 1
            wait = min(self.base_s * 2 ** (self._failures - 1), self.max_s)
            self.retry_at = now + timedelta(seconds=wait)
        lasted = (now - self.since).total_seconds() if self.since else 0.0
        if not self._announced and (self._failures == 1 or lasted >= self.quiet_s):
            self._announced = True
            log.error("%s; polling paused, retrying with backoff (next at %s)", exc,
                      self.retry_at.strftime("%H:%M:%S") if self.retry_at else "?")

    def succeeded(self) -> None:
        if self.problem is None:
            return
        if self._announced:
            log.warning("store: the database takes writes again (failing since %s); "
                        "polling resumes", self.since.strftime("%H:%M:%S") if self.since
                        else "?")
        self._recovered_at = self.clock()
        self.problem, self.since, self.retry_at, self._announced = None, None, None, False

    def may_try(self) -> bool:
        return self.retry_at is None or self.clock() >= self.retry_at
