"""What the rules API and pages compute: validation with line and column, a draft
rule's preview on the archive (narrowed by the full-text index, decided by the
daemon's own matcher), and explanations."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.core.errors import RuleError
from watcher.core.models import Article, Match
from watcher.rules import RuleSet, compile_rules, parse_rules
from watcher.rules.examples import run_examples
from watcher.rules.explain import Explanation, explain
from watcher.rules.narrow import candidate_query
from watcher.settings import Settings, parse_duration
from watcher.store.protocol import Store

_WHERE = re.compile(r"^(?P<src>[^\n]*?):(?P<line>\d+):(?P<col>\d+): (?P<msg>.*)$")
CANDIDATES_MAX = 50_000  # past this many candidates a preview says it is incomplete
SHOWN = 100


@dataclass(frozen=True)
class Problem:
    line: int | None
    column: int | None
    message: str


def problems_of(error: RuleError) -> list[Problem]:
    out = []
    for raw in str(error).removeprefix("rules: ").splitlines():
        m = _WHERE.match(raw)
        if m:
            out.append(Problem(int(m["line"]), int(m["col"]), m["msg"]))
        else:
            out.append(Problem(None, None, raw.split(": ", 1)[-1]))
    return out


def parse(text: str, settings: Settings) -> RuleSet:
    return parse_rules(text, "rules.yaml", channels=settings.channels.keys(),
                       unusable_channels=settings.unusable_channels)


def validate(text: str, settings: Settings) -> dict[str, Any]:
    """{"ok", "errors": [{line, column, message}], "examples": [...]}."""
    try:
        ruleset = parse(text, settings)
    except RuleError as exc:
        return {"ok": False, "errors": [asdict(p) for p in problems_of(exc)], "examples": []}
    ran, failures = run_examples(ruleset)
    failed = {(f.example.rule, f.example.where) for f in failures}
    why = {(f.example.rule, f.example.where): f.detail for f in failures}
    examples = [{"rule": ex.rule, "expect": "match" if ex.expect_match else "no_match",
                 "example": ex.label, "line": int(ex.where.split(":")[-2]),
                 "passed": (ex.rule, ex.where) not in failed,
                 "why": why.get((ex.rule, ex.where), "")} for ex in ruleset.examples]
    return {"ok": True, "errors": [], "examples": examples, "rules": len(ruleset.rules),
            "examples_run": ran}


@dataclass(frozen=True)
class Preview:
    rule: str
    since: datetime
    count: int
    complete: bool  # False when the candidates were more than the preview looks at
    narrowed_by: str | None  # the full-text search that found the candidates
    per_day: dict[str, int]
    matches: list[tuple[Article, Match]]


def preview(store: Store, ruleset: RuleSet, rule: str, since: str, now: datetime,
            shown: int = SHOWN) -> Preview:
    """The stored articles the rule would have matched since then, newest first."""
    chosen = next((r for r in ruleset.rules if r.name == rule), None)
    if chosen is None:
        raise KeyError(rule)
    start = now - timedelta(seconds=parse_duration(since))
    trees = {rule: ruleset.trees[rule]} if ruleset.trees else None
    compiled = compile_rules(RuleSet(rules=(chosen,), source=ruleset.source, trees=trees))
    query = candidate_query(trees[rule]) if trees else None
    complete = True
    if query is not None:
        found = store.search_articles(query, start, CANDIDATES_MAX)
        complete = len(found) < CANDIDATES_MAX
        batches: Any = [found]
    else:
        batches = store.iter_articles(start)
    count, per_day = 0, Counter[str]()
    out: list[tuple[Article, Match]] = []
    for batch in batches:
        for article in batch:
            m = next((m for m in compiled.match(article) if m.rule == rule), None)
            if m is None:
                continue
            count += 1
            per_day[(article.published or article.fetched_at).strftime("%Y-%m-%d")] += 1
            if len(out) < shown:
                out.append((article, m))
    return Preview(rule, start, count, complete, query, dict(sorted(per_day.items())), out)


MUTE_FOR = {"1h": 3600.0, "1d": 86400.0, "1w": 7 * 86400.0}


def mute(store: Store, ruleset: RuleSet, rule: str, span: str | None,
         now: datetime, drop: bool = False) -> datetime | None:
    """Mute a rule of the saved rules for a span (1h, 1d, 1w or a duration such as
    30m); None unmutes. What it holds goes out as one digest when the mute ends, or,
    `drop`, is marked dropped. KeyError: no such rule; ValueError: not a span."""
    if rule not in {r.name for r in ruleset.rules}:
        raise KeyError(rule)
    until = None if span is None else now + timedelta(
        seconds=MUTE_FOR.get(span) or parse_duration(span))
    store.mute_rule(rule, until, now, drop=drop)
    return until


def explain_article(ruleset: RuleSet, rule: str, article: Article) -> Explanation:
    return explain(ruleset, rule, article)


def explanation_json(e: Explanation) -> dict[str, Any]:
    return asdict(e)
