"""`watcher web`: the web console alone (on the same database as the daemons), and
`watcher web passwd NAME`, a password hash for the config. `watcher run` serves the
console too when console.listen is set (serve_in_thread)."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

from watcher.cli.common import load_settings_for, setup_logging
from watcher.core.errors import ConfigError
from watcher.settings import Settings
from watcher.store import open_store

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
    print("console:\n  users:\n"
          f"    {args.name}: {{password_hash: '{hash_password(password)}', role: {args.role}}}")
    return 0


def _server(settings: Settings, listen: str) -> Any:
    import uvicorn

    from watcher.web.app import create_app, login_url

    host, _, port = listen.rpartition(":")
    store = open_store(settings.database)
    app = create_app(settings, store)
    config = uvicorn.Config(app, host=host.strip("[]") or "127.0.0.1", port=int(port),
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
    return uvicorn.Server(config), store


def cmd_web(args: argparse.Namespace) -> int:
    settings = load_settings_for(args)
    setup_logging(args.verbose, settings.secrets, "text")
    server, store = _server(settings, args.listen or settings.console.listen or DEFAULT_LISTEN)
    try:
        server.run()
    finally:
        store.close()
    return 0 if server.started else 1


def serve_in_thread(settings: Settings) -> Callable[[], None]:
    """The console beside the daemon, on its own thread and event loop (uvicorn
    installs no signal handlers there: the daemon keeps its own); the stop."""
    assert settings.console.listen
    server, store = _server(settings, settings.console.listen)

    def run() -> None:
        try:
            server.run()
        except SystemExit:  # uvicorn gives up this way (an address in use)
            log.error("web: cannot serve on %s; the daemon runs without the console",
                      settings.console.listen)

    thread = threading.Thread(target=run, name="watcher-web", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()

    return stop
