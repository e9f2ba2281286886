"""The web console as an ASGI application (FastAPI): pages, the JSON API under
/api/v1, static files shipped in the package (htmx, pinned), all behind the guard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from watcher.settings import Settings
from watcher.store.protocol import Store
from watcher.web import api, feeds, login, outlook, pages
from watcher.web.auth import Auth
from watcher.web.context import Console, utc_now
from watcher.web.security import Guard, allowed_hosts, public_host

STATIC = Path(__file__).parent / "static"


def data_dir_of(settings: Settings) -> Path:
    """Where the console keeps its admin token: beside the SQLite database, or in the
    data folder next to the config for a server database."""
    if isinstance(settings.database, Path):
        return settings.database.parent
    return settings.source.parent.parent / "data"


def create_app(settings: Settings, store: Store, data_dir: Path | None = None,
               now: Callable[[], datetime] | None = None,
               clock: Callable[[], float] | None = None) -> FastAPI:
    auth = Auth(settings.web, data_dir or data_dir_of(settings), store,
                now or utc_now, **({"clock": clock} if clock else {}))
    app = FastAPI(title="watcher", version="1", openapi_url="/api/v1/openapi.json",
                  docs_url=None, redoc_url=None)
    ctx = Console(settings, store, auth)
    if now is not None:
        ctx.now = now
    app.state.console = ctx
    app.add_middleware(Guard, auth=auth,
                       hosts=allowed_hosts(settings.web.listen, (
                           *settings.web.hosts, *public_host(settings.web.public_url))))
    if settings.web.trusted_proxies:
        # Outermost, so that the guard and the routes see the client's scheme and address.
        app.add_middleware(ProxyHeadersMiddleware,
                           trusted_hosts=list(settings.web.trusted_proxies))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(login.router)
    app.include_router(pages.router)
    app.include_router(outlook.router)
    app.include_router(feeds.router)
    return app


def login_url(app: FastAPI, listen: str) -> str | None:
    """The one link that logs in with the admin token, when there is one."""
    token = app.state.console.auth.admin
    if token is None:
        return None
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}/login?token={token}"
