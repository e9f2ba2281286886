"""What every command shares: logging with secrets redacted, loading config and rules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from watcher.rules import RuleSet, load_rules
from watcher.settings import Settings, config_path, load_settings


class Redact(logging.Filter):
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


def setup_logging(verbose: bool, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                           "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_settings_for(args: argparse.Namespace) -> Settings:
    return load_settings(config_path(args.config))


def load_all(args: argparse.Namespace) -> tuple[Settings, RuleSet]:
    settings = load_settings_for(args)
    rules = load_rules(settings.rules, channels=settings.channels.keys(),
                       unusable_channels=settings.unusable_channels)
    return settings, rules
