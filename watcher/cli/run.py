"""`watcher run [--once]`: the daemon, or one full cycle."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path

from watcher.cli.common import load_all, setup_logging
from watcher.cli.web import serve_in_thread
from watcher.rules import compile_rules
from watcher.service.lock import DaemonLock

log = logging.getLogger("watcher")


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.service.daemon import Daemon

    settings, ruleset = load_all(args)
    setup_logging(args.verbose, settings.secrets, args.log_format)
    for notice in settings.notices:
        log.warning("config: %s", notice)
    for name, why in settings.unusable_channels.items():
        log.warning("config: channel %r is unusable and no rule uses it: %s", name, why)
    # One daemon per SQLite file; daemons sharing PostgreSQL claim their work there.
    lock = (contextlib.nullcontext() if settings.shared_database
            else DaemonLock(Path(settings.database)))
    with lock:
        daemon = Daemon(settings, compile_rules(ruleset))
        # What start-up built (modules, the config, the compiled rules) lives as long as
        # the process: out of the collector's sight, a full collection no longer walks
        # it. Once, here: later garbage (a reloaded config) is still collected.
        gc.freeze()
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            if args.once:
                return runner.run(daemon.run_once(stats_path=args.stats))
            stop_web = None
            if settings.web.listen:
                stop_web, daemon.websub_door = serve_in_thread(settings)
            try:
                return runner.run(daemon.run_forever())
            finally:
                if stop_web is not None:
                    stop_web()


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed, else asyncio's (None).

    The daemon's process is the busier one in a cycle, and asyncio's own loop and
    socket transports were a visible share of its CPU; uvloop's are in C
    (benchmarks/RESULTS.md). WATCHER_EVENT_LOOP=asyncio keeps the standard loop.
    """
    if os.environ.get("WATCHER_EVENT_LOOP", "").strip().lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:  # not built for this platform: the standard loop
        return None
    return uvloop.new_event_loop
