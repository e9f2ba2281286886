"""The WebSub callbacks on the console's server: hubs reach `/websub/<id>` on
`web.public_url`, and each request is handed to the daemon's event loop, where its
subscriptions, the store and the ingest path live (watcher.service.websub).

The door sits in front of the console's guard: hubs carry no session, no CSRF token
and whatever Host header the proxy in front sends; what makes a push believed is its
X-Hub-Signature, checked by the daemon before anything is parsed. `watcher web` alone
has no daemon behind the door: it answers 503, and the hub tries again later.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

PATH = "/websub/"
# method, callback id, query, headers (lower-case names), body (None: not read, its
# declared length missing or over the cap) -> status, text
Answer = Callable[[str, str, Mapping[str, str], Mapping[str, str], bytes | None],
                  Coroutine[Any, Any, tuple[int, str]]]
# callback id -> whether a push there would be taken (asked before its body is read)
Knows = Callable[[str], Coroutine[Any, Any, bool]]
_TIMEOUT_S = 10.0


class WebSubDoor:
    """The way from the console's server (its own thread and loop) to the daemon's."""

    def __init__(self, max_bytes: int, daemon: bool = False) -> None:
        self.max_bytes = max_bytes
        # beside a daemon (`watcher run`), not yet attached means not yet started
        self._absent = "the daemon is starting" if daemon else "no daemon behind this console"
        self._lock = threading.Lock()
        self._target: tuple[asyncio.AbstractEventLoop, Answer, Knows] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop, answer: Answer, knows: Knows) -> None:
        with self._lock:
            self._target = (loop, answer, knows)

    def detach(self) -> None:
        with self._lock:
            self._target = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, text = await asyncio.wait_for(self._answer(scope, receive), _TIMEOUT_S)
        except TimeoutError:
            status, text = 503, "try again"
        except ValueError:
            status, text = 400, "bad request"
        data = text.encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _answer(self, scope: Scope, receive: Receive) -> tuple[int, str]:
        callback = scope["path"][len(PATH):]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        declared = headers.get("content-length", "")
        body = None
        if scope["method"] == "POST" and declared.isdigit() and int(declared) <= self.max_bytes:
            # a stranger's body is not read (up to the cap) for a callback nobody has
            known = await self._on_daemon(lambda target: target[2](callback))
            if known is not True:
                return known if isinstance(known, tuple) else (404, "unknown subscription")
            body = await _read(receive, int(declared))
        answered = await self._on_daemon(
            lambda target: target[1](scope["method"], callback, query, headers, body))
        return answered if isinstance(answered, tuple) else (503, "try again")

    async def _on_daemon(self, call: Callable[[tuple[asyncio.AbstractEventLoop, Answer, Knows]],
                                              Coroutine[Any, Any, Any]]) -> Any:
        """`call`'s coroutine run on the daemon's loop; (503, why) when there is no daemon
        or it is stopping."""
        with self._lock:
            target = self._target
        if target is None:
            return 503, self._absent
        try:
            future = asyncio.run_coroutine_threadsafe(call(target), target[0])
            return await asyncio.wrap_future(future)
        except (RuntimeError, concurrent.futures.CancelledError, asyncio.CancelledError):
            return 503, "try again"  # the daemon's loop closed or stopped meanwhile


async def _read(receive: Receive, length: int) -> bytes:
    """The body, exactly as long as declared: a longer or shorter one is refused."""
    chunks, got = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ValueError("the client went away")
        chunk = message.get("body", b"")
        got += len(chunk)
        if got > length:
            raise ValueError("a body longer than its Content-Length")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if got != length:
        raise ValueError("a body shorter than its Content-Length")
    return b"".join(chunks)


def with_websub(console: ASGIApp, door: WebSubDoor) -> ASGIApp:
    """One server: `/websub/` to the door, everything else to the console."""
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PATH):
            await door(scope, receive, send)
        else:
            await console(scope, receive, send)
    return app
