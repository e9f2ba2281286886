"""The extraction worker process: one length-prefixed request in, one answer out.

Started by the pool in watcher.service.workers (multiprocessing's forkserver,
which imports this module and trafilatura once for every worker it starts).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import socket
import struct
import threading
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from watcher.core.errors import ExtractError, FetchError
from watcher.core.models import Entry, Extracted, Undecoded
from watcher.extract.choose import feed_text, keep_text
from watcher.fetch.decoding import decode_body


class ExtractFunc(Protocol):
    """Page bytes, URL, Content-Type -> Extracted (watcher.extract.page.extract_page).
    feed_chars: the length of the feed's own text for the page, 0 when unknown."""

    def __call__(self, body: bytes, url: str | None, content_type: str | None, *,
                 feed_chars: int = 0) -> Extracted: ...

HEADER = struct.Struct("!I")
# Workers run at a lower priority than the daemon's process. That process fetches
# the pages they extract and stores what they return: sharing the cores with it as
# equals, the workers ran out of pages while it waited to be scheduled. It also
# keeps the daemon's timers and deliveries on time while pages are extracted.
NICENESS = 5


def _read_exactly(stream: Any, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def decode_and_run(func: ExtractFunc, body: bytes, url: str | None,
                   content_type: str | None, undecoded: Undecoded | None,
                   entry: Entry | None) -> Extracted:
    """A page the fetcher kept compressed is inflated here, under its cap: work
    taken off the daemon's process, which feeds all the workers. With the feed's
    entry, the text the article keeps is chosen and signed here too (`kept`)."""
    try:
        body = decode_body(body, undecoded)
    except FetchError as exc:
        raise ExtractError(str(exc)) from None
    if entry is None:
        return func(body, url, content_type)
    extracted = func(body, url, content_type, feed_chars=len(feed_text(entry)[0]))
    return replace(extracted, kept=keep_text(extracted, entry))


def answer(func: ExtractFunc, request: bytes) -> bytes:
    body, url, content_type, undecoded, entry = pickle.loads(request)
    started = time.process_time()
    status: str = "ok"
    try:
        value: Any = decode_and_run(func, body, url, content_type, undecoded, entry)
    except ExtractError as exc:
        status, value = "error", str(exc)
    except Exception as exc:  # a bug on one page must cost that page only
        status, value = "error", (f"{url or 'page'}: extraction failed: "
                                  f"{type(exc).__name__}: {exc}")
    return pickle.dumps((status, value, time.process_time() - started),
                        protocol=pickle.HIGHEST_PROTOCOL)


def serve(sock: socket.socket, func: ExtractFunc) -> None:
    """Worker main loop: one frame in, one frame out, until the socket closes."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the
    # daemon decides what stops, and finishes the pages under way while it drains.
    # It stops a worker with SIGKILL; a worker whose daemon is gone sees its socket end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # a sandbox may refuse it: then as before
        os.nice(NICENESS)
    import trafilatura  # (loaded before the first page's clock starts)

    from watcher.extract import prune_xpath

    # Its first frame says it is ready, and how much of the pruning runs in Python.
    ready = pickle.dumps((prune_xpath.install(), trafilatura.__version__))
    gc.freeze()  # the modules stay for the worker's life: no collection need walk them

    with sock, sock.makefile("rb") as rfile, sock.makefile("wb") as wfile:
        try:
            wfile.write(HEADER.pack(len(ready)) + ready)
            wfile.flush()
            while (header := _read_exactly(rfile, HEADER.size)) is not None:
                request = _read_exactly(rfile, HEADER.unpack(header)[0])
                if request is None:
                    return
                reply = answer(func, request)
                wfile.write(HEADER.pack(len(reply)) + reply)
                wfile.flush()
        except OSError:
            return  # the daemon went away mid-answer: nothing left to do


# `close()`, on its own thread, and the loop, seeing the killed worker's socket
# end, may stop the same process at once: Process.close() is not safe twice at once.
_KILL_LOCK = threading.Lock()


def kill(process: BaseProcess) -> None:
    """Stop a worker process (the pool's side): at once, and once."""
    with _KILL_LOCK, contextlib.suppress(ValueError):  # ValueError: already closed
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        process.close()
