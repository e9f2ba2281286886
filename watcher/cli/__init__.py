"""The composition root: reads config and rules, wires the parts, runs a command.

Every command's arguments are in `commands`; the module that runs a command is
imported only when it is dispatched. Nothing imports the cli package.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from watcher import __version__
from watcher.cli.commands import register_all
from watcher.core.errors import WatcherError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH",
                        help="config file (default: $WATCHER_CONFIG, else config/watcher.yaml)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser = argparse.ArgumentParser(prog="watcher", parents=[common],
                                     description="News keyword-alert daemon.")
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    register_all(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except WatcherError as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
