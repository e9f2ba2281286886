"""Real HTTP servers on 127.0.0.1, port 0, for feeds, pages and webhook receivers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Response = tuple[int, dict[str, str], "bytes | Iterable[bytes]"]
Handler = Callable[["Request"], Response]


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up on purpose (deadline tests) close mid-answer.
        return


@dataclass
class LoopbackServer:
    """Serves files under `root` plus routes set by the test; records every request."""

    root: Path | None = None
    routes: dict[str, Handler | Response] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    default_status: int = 404
    # Another loopback address (127.0.0.2 ...) stands for another site.
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        owner = self

        class _H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, Nagle's algorithm
            # and delayed ACKs add ~40 ms to every keep-alive response.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The client died mid-request (a SIGKILL test): a real server
                    # drops such a request, it never reaches the application.
                    self.close_connection = True
                    return
                req = Request(self.command, self.path,
                              {k.lower(): v for k, v in self.headers.items()}, body)
                owner.requests.append(req)
                status, headers, payload = owner.respond(req)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                streamed = not isinstance(payload, bytes)
                if streamed:
                    # A body of unknown length, ended by closing the connection.
                    self.send_header("Connection", "close")
                    self.close_connection = True
                elif "content-length" not in {k.lower() for k in headers}:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if not streamed:
                    self.wfile.write(payload)
                    return
                try:
                    for chunk in payload:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    return  # the client gave up, as it should

            do_GET = do_POST = do_HEAD = _handle

        self.httpd = _QuietServer((self.host, 0), _H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def respond(self, req: Request) -> Response:
        route = self.routes.get(req.path.split("?")[0])
        if route is not None:
            return route(req) if callable(route) else route
        if self.root is not None and req.method in ("GET", "HEAD"):
            target = (self.root / req.path.lstrip("/").split("?")[0]).resolve()
            if target.is_file() and target.is_relative_to(self.root.resolve()):
                ctype = {".xml": "application/rss+xml", ".html": "text/html; charset=utf-8",
                         ".json": "application/feed+json"}.get(target.suffix, "text/plain")
                return 200, {"Content-Type": ctype}, target.read_bytes()
        return self.default_status, {"Content-Type": "text/plain"}, b"not found"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class WebhookReceiver(LoopbackServer):
    """Accepts POSTs on /hook with `status` (settable while running)."""

    status: int = 200

    def respond(self, req: Request) -> Response:
        if req.method == "POST" and req.path == "/hook":
            return self.status, {"Content-Type": "text/plain"}, b"ok"
        return 404, {}, b""

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
