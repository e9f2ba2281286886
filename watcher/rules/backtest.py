"""Run rules over stored articles without sending anything: what would have fired."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from watcher.core.models import Article, Match
from watcher.rules.match import CompiledRules


@dataclass
class Tally:
    rule: str
    count: int = 0
    newest: list[tuple[Article, Match]] = field(default_factory=list)


def backtest(compiled: CompiledRules, batches: Iterable[list[Article]],
             only: str | None = None, keep: int = 3,
             progress: Callable[[int], None] | None = None) -> dict[str, Tally]:
    """Per rule: how many articles matched, and the first `keep` seen (pass newest first)."""
    tallies = {r.name: Tally(r.name) for r in compiled.rules if only in (None, r.name)}
    for batch in batches:
        for article in batch:
            for m in compiled.match(article):
                t = tallies.get(m.rule)
                if t is None:
                    continue
                t.count += 1
                if len(t.newest) < keep:
                    t.newest.append((article, m))
        if progress:
            progress(len(batch))
    return tallies
