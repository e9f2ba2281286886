"""`watcher rules check|schema|test|explain`: edit rules safely, see what they would
catch, and why a rule did or did not fire."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


def cmd_explain(args: argparse.Namespace) -> int:
    from watcher.rules.explain import explain

    settings = _settings(args, required=True)
    assert settings is not None
    ruleset = _load(args, settings)
    store = open_store(settings.database)
    try:
        article = store.article(args.article_id)
    finally:
        store.close()
    if article is None:
        raise ConfigError(f"rules explain: no stored article {args.article_id}")
    try:
        e = explain(ruleset, args.rule, article)
    except KeyError:
        raise RuleError(f"{ruleset.source}: no rule named {args.rule!r}") from None
    verdict = "matched" if e.matched else "did not match"
    print(f"rule {e.rule!r} {verdict} article {article.id} "
          f"([{article.feed}] {printable(article.title) or '(untitled)'})")
    for step in (e.query, *e.conditions):
        _print_step(step, 1)
    return 0 if e.matched else 1


def _print_step(step: Any, depth: int) -> None:
    mark = "yes" if step.held else "no "
    pad = "  " * depth
    if step.kind == "term":
        print(f"{pad}{mark} {step.text} in {', '.join(step.fields)}")
        for p in step.places:
            at = f", word {p.word + 1}" if p.word >= 0 else ""
            print(f"{pad}      {p.field}{at}: {printable(p.written)!r} "
                  f"(seen as {printable(p.seen_as)!r})")
    elif step.kind in ("and", "or", "not"):
        print(f"{pad}{mark} {step.text}")
    else:
        print(f"{pad}{mark} {step.kind}: {step.text}")
    for child in step.children:
        _print_step(child, depth + 1)
