"""The composition root: reads config and rules, wires the parts, runs a command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from watcher import __version__
from watcher.errors import WatcherError
from watcher.rules import RuleSet, compile_rules, load_rules
from watcher.settings import Settings, config_path, load_settings

log = logging.getLogger("watcher")


class _Redact(logging.Filter):
    """Secrets from the environment never reach a log line."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            for s in self.secrets:
                message = message.replace(s, "***")
            record.msg, record.args = message, None
        return True


def _setup_logging(verbose: bool, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(_Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _load(args: argparse.Namespace) -> tuple[Settings, RuleSet]:
    settings = load_settings(config_path(args.config))
    rules = load_rules(settings.rules, channels=settings.channels.keys(),
                       unusable_channels=settings.unusable_channels)
    return settings, rules


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.daemon import Daemon

    settings, ruleset = _load(args)
    _setup_logging(args.verbose, settings.secrets)
    for name, why in settings.unusable_channels.items():
        log.warning("config: channel %r is unusable and no rule uses it: %s", name, why)
    daemon = Daemon(settings, compile_rules(ruleset))
    if args.once:
        return asyncio.run(daemon.run_once())
    return asyncio.run(daemon.run_forever())


def cmd_check(args: argparse.Namespace) -> int:
    settings, ruleset = _load(args)
    print(f"config: {settings.source}")
    print(f"database: {settings.database}")
    print(f"rules: {settings.rules} ({len(ruleset.rules)} rule(s))")
    print(f"feeds ({len(settings.feeds)}):")
    for f in settings.feed_models():
        tags = f" tags={','.join(f.tags)}" if f.tags else ""
        print(f"  {f.name}: {f.url} every {f.interval_s:g}s{tags}")
    print(f"channels ({len(settings.channels)}):")
    for name, ch in settings.channels.items():
        print(f"  {name}: {ch.type}")
    for name, why in settings.unusable_channels.items():
        print(f"  {name}: UNUSABLE ({why}); no rule uses it")
    print("rules:")
    for r in ruleset.rules:
        from watcher.rules.match import describe

        print(f"  {r.name}: {describe(r)} -> {', '.join(r.notify)}")
    print("ok")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH",
                        help="config file (default: $WATCHER_CONFIG, else config/watcher.yaml)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser = argparse.ArgumentParser(prog="watcher", parents=[common],
                                     description="News keyword-alert daemon.")
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument("--once", action="store_true",
                     help="poll every feed and deliver every alert once, then exit "
                          "(status 1 if any feed failed)")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", parents=[common], help="validate config and rules")
    check.set_defaults(func=cmd_check)
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
