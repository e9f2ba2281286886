"""Every request: the Host header checked (DNS rebinding), the caller identified
(Bearer token, else the session cookie), and strict headers on every answer."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from watcher.core.errors import StoreError
from watcher.web.auth import Auth, Principal, Session

COOKIE = "watcher_session"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: with it, browsers send "Origin: null" on the console's own forms,
    # and the origin is what tells them from another site's. Feed links carry rel=noreferrer.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
OPEN_PATHS = ("/login", "/static/")
UNSAFE = frozenset(("POST", "PUT", "PATCH", "DELETE"))


def allowed_hosts(listen: str | None, extra: Iterable[str]) -> frozenset[str]:
    hosts = {"127.0.0.1", "localhost", "::1", *(h.lower() for h in extra)}
    if listen:
        host = listen.rpartition(":")[0].strip("[]").lower()
        if host not in ("", "0.0.0.0", "::"):  # a wildcard is no name a browser uses
            hosts.add(host)
    return frozenset(hosts)


def public_host(public_url: str | None) -> tuple[str, ...]:
    """The name `web.public_url` gives this server: browsers may use it too."""
    host = urlsplit(public_url).hostname if public_url else None
    return (host,) if host else ()


def host_of(header: str) -> str:
    try:
        return (urlsplit("//" + header).hostname or "").lower()
    except ValueError:
        return ""


class Guard(BaseHTTPMiddleware):
    def __init__(self, app: object, auth: Auth, hosts: frozenset[str]) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.auth, self.hosts = auth, hosts

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await self._checked(request, call_next)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    async def _checked(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if host_of(request.headers.get("host", "")) not in self.hosts:
            return PlainTextResponse("web: this Host is not one the console answers to",
                                     status_code=421)
        path = request.url.path
        api = path.startswith("/api/")
        try:
            principal, session, bearer = await run_in_threadpool(self._identify, request)
        except StoreError as exc:  # sessions live in the database: it cannot answer now
            if path.startswith("/static/"):
                principal, session, bearer = None, None, False
            else:
                return _refuse(api, 503, f"web: {exc}; try again")
        if request.method in UNSAFE and not bearer and not _same_origin(request):
            return _refuse(api, 403, "web: a request from another site was refused")
        request.state.principal, request.state.session = principal, session
        if principal is None and not path.startswith(OPEN_PATHS):
            if api:
                return JSONResponse({"detail": "authentication required"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            return RedirectResponse("/login", status_code=303)
        if request.method in UNSAFE and session is not None and not bearer and api:
            sent = request.headers.get("x-csrf-token", "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                return _refuse(True, 403, "web: missing or wrong CSRF token")
        return await call_next(request)

    def _identify(self, request: Request) -> tuple[Principal | None, Session | None, bool]:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.auth.by_token(header[7:].strip()), None, True
        session = self.auth.session(request.cookies.get(COOKIE))
        return (session.principal if session else None), session, False


def _same_origin(request: Request) -> bool:
    """A browser's cross-site request names its origin; one without Origin nor Referer
    (curl, scripts) carries no cookie the browser chose to send."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


def _refuse(api: bool, status: int, message: str) -> Response:
    if api:
        return JSONResponse({"detail": message}, status_code=status)
    return PlainTextResponse(message, status_code=status)


def check_form_csrf(request: Request, sent: object) -> bool:
    """A form's CSRF field against its session's token (Bearer callers have none)."""
    session: Session | None = request.state.session
    if session is None:
        return request.headers.get("authorization", "").lower().startswith("bearer ")
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), session.csrf.encode())
