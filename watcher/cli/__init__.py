"""The composition root: reads config and rules, wires the parts, runs a command.

Every command's arguments are in `commands`; the module that runs a command is
imported only when it is dispatched. Nothing imports the cli package.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from watcher import __version__
from watcher.cli.commands import register_all
from watcher.core.errors import WatcherError


def _common(default: object) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=default,
                        help="config file (default: $WATCHER_CONFIG, else config/watcher.yaml)")
    common.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logging")
    return common


def build_parser() -> argparse.ArgumentParser:
    """--config and -v go before or after the command: the commands' parsers leave
    them unset unless given (SUPPRESS), so a value given before is not overwritten."""
    parser = argparse.ArgumentParser(prog="watcher", parents=[_common(None)],
                                     description="News keyword-alert daemon.")
    parser.set_defaults(verbose=False)
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    register_all(sub, _common(argparse.SUPPRESS))
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
    except BrokenPipeError:
        # `watcher show ... | head`: the reader has what it wanted. Python would report
        # the pipe again when it flushes stdout at exit; point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
