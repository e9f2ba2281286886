"""`watcher web`: the web console alone (on the same database as the daemons), and
`watcher web passwd NAME`, a password hash for the config. `watcher run` serves the
console too when web.listen is set (serve_in_thread), with the WebSub callbacks on the
same server when web.public_url is set."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from watcher.cli.common import load_settings_for, setup_logging
from watcher.core.errors import ConfigError
from watcher.settings import Settings
from watcher.store import open_store
from watcher.store.protocol import Store

if TYPE_CHECKING:
    from watcher.web.websub import WebSubDoor

log = logging.getLogger("watcher.web")
DEFAULT_LISTEN = "127.0.0.1:8080"


def cmd_passwd(args: argparse.Namespace) -> int:
    from watcher.web.auth import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("web passwd: the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("web passwd: a password needs at least 8 characters")
    print("web:\n  users:\n"
          f"    {args.name}: {{password_hash: '{hash_password(password)}', role: {args.role}}}")
    return 0


def _server(settings: Settings, listen: str, daemon: bool = False
            ) -> tuple[Any, Store, WebSubDoor]:
    import uvicorn

    from watcher.web.app import create_app, login_url
    from watcher.web.websub import WebSubDoor, with_websub

    host, _, port = listen.rpartition(":")
    store = open_store(settings.database)
    app = create_app(settings, store)
    door = WebSubDoor(settings.fetch.max_feed_bytes, daemon)
    served = with_websub(app, door) if settings.web.public_url else app
    config = uvicorn.Config(served, host=host.strip("[]") or "127.0.0.1", port=int(port),
                            log_level="warning", server_header=False, proxy_headers=False,
                            lifespan="off")
    url = login_url(app, listen)
    where = f"http://{listen}"
    if url:
        # Printed, not logged: the log hides token-like values, and this one must be seen.
        print(f"web: console at {where}; log in once with {url} (the token is kept in "
              f"{app.state.console.auth.token_path})", file=sys.stderr, flush=True)
    else:
        log.warning("web: console at %s", where)
    if settings.web.public_url:
        # One server: wherever the hubs reach it, people reach the console's login too.
        log.warning("web: WebSub callbacks at %s/websub/ on the same server; the console "
                    "answers at %s too, behind its login", settings.web.public_url.rstrip("/"),
                    settings.web.public_url)
    return uvicorn.Server(config), store, door


def cmd_web(args: argparse.Namespace) -> int:
    settings = load_settings_for(args)
    setup_logging(args.verbose, settings.secrets, "text")
    for notice in settings.notices:
        log.warning("config: %s", notice)
    server, store, _ = _server(settings, args.listen or settings.web.listen or DEFAULT_LISTEN)
    try:
        server.run()
    finally:
        store.close()
    return 0 if server.started else 1


def serve_in_thread(settings: Settings) -> tuple[Callable[[], None], WebSubDoor]:
    """The console beside the daemon, on its own thread and event loop (uvicorn
    installs no signal handlers there: the daemon keeps its own); its stop, and the
    door the daemon's WebSub answers the hubs through."""
    assert settings.web.listen
    server, store, door = _server(settings, settings.web.listen, daemon=True)

    def run() -> None:
        try:
            server.run()
        except SystemExit:  # uvicorn gives up this way (an address in use)
            log.error("web: cannot serve on %s; the daemon runs without the console",
                      settings.web.listen)

    thread = threading.Thread(target=run, name="watcher-web", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()

    return stop, door
