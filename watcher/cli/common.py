"""What every command shares: logging with secrets redacted, loading config and rules."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from watcher.core.display import printable, redact
from watcher.settings import config_path
from watcher.settings.essentials import Essentials, cached_essentials, essentials_of
from watcher.store import Store, open_store

if TYPE_CHECKING:
    from watcher.rules import RuleSet
    from watcher.settings import Settings

# the longest line a log record keeps: a 1 MB title must not become a 1 MB log line
LOG_LINE_LIMIT = 2000


class Redact(logging.Filter):
    """Secrets never reach a log line, whatever echoed them; nor do escape
    sequences or control characters from feed content, nor endless lines."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = printable(redact(message, self.secrets), multiline=True,
                               limit=LOG_LINE_LIMIT)
        record.args = None
        return True


_STAGE = re.compile(r"^([a-z]+):")
_FEED = re.compile(r"feed '([^']+)'")
_RULE = re.compile(r"rule '([^']+)'")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, stage, feed, rule, message."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        stage = _STAGE.match(message)
        feed = _FEED.search(message)
        rule = _RULE.search(message)
        return json.dumps({
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "stage": stage.group(1) if stage else record.name.rpartition(".")[2],
            "feed": feed.group(1) if feed else None,
            "rule": rule.group(1) if rule else None,
            "message": message,
        }, ensure_ascii=False)


def setup_logging(verbose: bool, secrets: Sequence[str] = (), fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "apscheduler", "trafilatura", "htmldate", "courlan"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def load_settings_for(args: argparse.Namespace, cached: bool = True) -> Settings:
    """The validated config; unchanged since the last command, from the cache (not
    for `watcher check`, whose job is to validate)."""
    from watcher.settings import load_settings, load_settings_cached

    path = config_path(args.config)
    return load_settings_cached(path) if cached else load_settings(path)


def essentials_for(args: argparse.Namespace) -> Essentials:
    """What `watcher status` needs of the config: kept from the last validation of
    this very file (no pydantic, no models), else validated now."""
    return (cached_essentials(config_path(args.config))
            or essentials_of(load_settings_for(args)))


def open_store_for(args: argparse.Namespace) -> tuple[Settings, Store]:
    settings = load_settings_for(args)
    return settings, open_store(settings.database)


def jsonable(value: Any) -> Any:
    """Records for --json: dataclasses as objects, times as ISO 8601 UTC text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return value


def when(value: datetime | None, width: int = 19) -> str:
    """A stored time for a table: '2026-05-01 10:00:00' (UTC), or '-'."""
    return value.astimezone(UTC).isoformat(" ")[:width] if value else "-"


def load_all(args: argparse.Namespace, cached: bool = True) -> tuple[Settings, RuleSet]:
    """The config and the rules, validated; `cached`: as kept by the last command when
    neither changed (watcher.settings.cache, watcher.settings.rules_cache)."""
    settings = load_settings_for(args, cached)
    channels, unusable = settings.channels.keys(), settings.unusable_channels
    if not cached:
        from watcher.rules.load import load_rules

        return settings, load_rules(settings.rules, channels, unusable)
    from watcher.settings.rules_cache import load_rules_cached

    return settings, load_rules_cached(settings.rules, channels, unusable)


class Progress:
    """A rich progress bar on a terminal; a plain line now and then otherwise."""

    def __init__(self, total: int, label: str, unit: str, every: int = 5000) -> None:
        self.total, self.done, self.unit, self.every = total, 0, unit, every
        self.bar: Any = None
        self.task: Any = None
        if sys.stdout.isatty():
            from rich.progress import Progress as Bar

            self.bar = Bar(transient=True)
            self.task = self.bar.add_task(label, total=total)
            self.bar.start()

    def __call__(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            self.bar.advance(self.task, n)
        elif before // self.every != self.done // self.every:
            print(f"... {self.done} of {self.total} {self.unit}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
