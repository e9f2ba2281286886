"""`watcher run [--once]`: the daemon, or one full cycle."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from watcher.cli.common import load_all, setup_logging
from watcher.rules import compile_rules

log = logging.getLogger("watcher")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run the daemon")
    p.add_argument("--once", action="store_true",
                   help="poll every feed and deliver every alert once, then exit "
                        "(status 1 if any feed failed)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.daemon import Daemon

    settings, ruleset = load_all(args)
    setup_logging(args.verbose, settings.secrets)
    for name, why in settings.unusable_channels.items():
        log.warning("config: channel %r is unusable and no rule uses it: %s", name, why)
    daemon = Daemon(settings, compile_rules(ruleset))
    if args.once:
        return asyncio.run(daemon.run_once())
    return asyncio.run(daemon.run_forever())
