"""The pool's side of each extraction worker: its socket, the pages it holds, and
frames handed to the kernel without blocking the event loop."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess

from watcher.core.errors import ExtractError
from watcher.core.models import Extracted


@dataclass(eq=False)
class Job:
    """A page handed to an extraction worker, and the future its result goes to."""

    frame: bytes  # the request, length-prefixed
    url: str | None
    future: asyncio.Future[Extracted]
    copied: bool = False  # a copy went to another worker (it waited behind a slow page)
    key: str | None = None  # whose page (a feed): one key may hold only a share of workers


@dataclass(eq=False)
class Worker:
    """An extraction process and the socket the event loop talks to it through."""

    process: BaseProcess
    sock: socket.socket  # non-blocking, watched by `loop`
    loop: asyncio.AbstractEventLoop
    ready: bool = False
    inflight: deque[Job] = field(default_factory=deque)
    # Until it is ready, the limit on its start; then the limit of its oldest page.
    timer: asyncio.TimerHandle | None = None
    expired: Job | None = None  # the page it was killed over
    received: bytearray = field(default_factory=bytearray)  # not yet a whole frame
    unsent: bytearray = field(default_factory=bytearray)  # no room in the kernel yet
    retired: bool = False
    slow: bool = False  # its current page has run longer than _SLOW_S
    slow_timer: asyncio.TimerHandle | None = None
    idle_timer: asyncio.TimerHandle | None = None
    sent: int = 0  # pages sent to it over its life
    draining: bool = False  # sent its last page before it is replaced (recycle_after)


def send(worker: Worker, frame: bytes) -> None:
    """Hand a frame to the kernel; what does not fit waits for the socket to drain."""
    if worker.unsent:
        worker.unsent += frame
        return
    try:
        sent = worker.sock.send(frame)
    except (BlockingIOError, InterruptedError):
        sent = 0
    except OSError:
        return  # the worker is gone: its socket's end is handled on the reading side
    if sent < len(frame):
        worker.unsent += memoryview(frame)[sent:]
        worker.loop.add_writer(worker.sock.fileno(), drain, worker)


def drain(worker: Worker) -> None:
    try:
        sent = worker.sock.send(worker.unsent)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        sent = len(worker.unsent)  # gone: the reading side handles it
    del worker.unsent[:sent]
    if not worker.unsent:
        worker.loop.remove_writer(worker.sock.fileno())


def fail(job: Job, message: str) -> None:
    if not job.future.done():
        job.future.set_exception(ExtractError(message))
