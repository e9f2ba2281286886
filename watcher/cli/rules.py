"""`watcher rules check|schema|test`: edit rules safely, see what they would catch."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from watcher.cli.common import Progress
from watcher.core.display import printable
from watcher.core.errors import ConfigError, RuleError
from watcher.rules import RuleSet, compile_rules, load_rules
from watcher.rules.backtest import backtest
from watcher.rules.examples import run_examples
from watcher.rules.schema import rules_schema_text
from watcher.settings import Settings, config_path, load_settings, parse_duration
from watcher.store import open_store


def _settings(args: argparse.Namespace, required: bool) -> Settings | None:
    try:
        return load_settings(config_path(args.config))
    except ConfigError as exc:
        if required or args.config:
            raise
        print(f"note: channels not checked: {exc}", file=sys.stderr)
        return None


def _load(args: argparse.Namespace, settings: Settings | None) -> RuleSet:
    path = Path(args.file) if args.file else settings.rules if settings else None
    if path is None:
        raise ConfigError("rules: no rules file given and no config to find one in")
    if settings is None:
        return load_rules(path)
    return load_rules(path, channels=settings.channels.keys(),
                      unusable_channels=settings.unusable_channels)


def cmd_check(args: argparse.Namespace) -> int:
    settings = _settings(args, required=not args.file)
    try:
        ruleset = _load(args, settings)
    except RuleError as exc:
        for line in str(exc).removeprefix("rules: ").splitlines():
            print(line)
        return 1
    ran, failures = run_examples(ruleset)
    for failure in failures:
        print(failure)
    if failures:
        print(f"{ruleset.source}: {len(failures)} of {ran} example(s) failed")
        return 1
    print(f"{ruleset.source}: {len(ruleset.rules)} rule(s) ok, {ran} example(s) passed")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    text = rules_schema_text()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    settings = _settings(args, required=True)
    assert settings is not None
    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        raise ConfigError(f"rules test: --since: {exc}") from None
    ruleset = _load(args, settings)
    if args.rule and args.rule not in {r.name for r in ruleset.rules}:
        raise RuleError(f"{ruleset.source}: no rule named {args.rule!r}")
    compiled = compile_rules(ruleset)
    since = datetime.now(UTC) - timedelta(seconds=since_s)
    store = open_store(settings.database)
    try:
        total = store.count_articles_since(since)
        progress = Progress(total, "matching", "article(s)")
        try:
            tallies = backtest(compiled, store.iter_articles(since), only=args.rule,
                               keep=max(args.show, 0), progress=progress)
        finally:
            progress.close()
    finally:
        store.close()
    print(f"{total} article(s) since {since:%Y-%m-%d %H:%M} UTC; nothing was sent")
    for t in tallies.values():
        print(f"{t.rule}: {t.count} article(s) would have matched")
        for article, m in t.newest:
            when = article.published or article.fetched_at
            title = printable(article.title) or "(untitled)"
            print(f"  {when:%Y-%m-%d %H:%M}  [{article.feed}] {title}")
            print(f"      {m.field}: {printable(_marked(m.snippet, [h.matched for h in m.hits]))}")
    return 0


def _marked(snippet: str, matched: list[str]) -> str:
    from watcher.delivery.render import mark

    return mark(snippet, tuple(matched))
