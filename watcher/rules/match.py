"""Compile a rule set once; match articles against all of it in one pass per field."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from watcher.models import FIELDS, Article, Hit, Match, Rule
from watcher.rules.load import RuleSet
from watcher.rules.snippet import snippet
from watcher.rules.text import phrase_keys, tokens


def describe(rule: Rule) -> str:
    """The rule as a Lucene-style query, so an alert can say what fired it."""

    def group(phrases: tuple[str, ...], op: str) -> str:
        quoted = [f'"{p}"' for p in phrases]
        return quoted[0] if len(quoted) == 1 else "(" + f" {op} ".join(quoted) + ")"

    parts = []
    if rule.any:
        parts.append(group(rule.any, "OR"))
    if rule.all:
        parts.append(group(rule.all, "AND"))
    query = " AND ".join(parts)
    if rule.none:
        query += " AND NOT " + group(rule.none, "OR")
    if tuple(rule.fields) != FIELDS:
        query = f"[{', '.join(rule.fields)}] " + query
    return query


@dataclass(frozen=True)
class _Phrase:
    text: str
    keys: tuple[str, ...]


class CompiledRules:
    """Every phrase of every rule, indexed by its first word.

    Matching tokenises each field once and looks each word up, so the cost
    grows with the article's length and the number of phrases that share a
    first word, not with the number of rules.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._phrases: dict[tuple[str, ...], _Phrase] = {}
        self._by_first: dict[str, list[_Phrase]] = defaultdict(list)
        for rule in ruleset.rules:
            for text in (*rule.any, *rule.all, *rule.none):
                keys = phrase_keys(text)
                if keys not in self._phrases:
                    p = _Phrase(text, keys)
                    self._phrases[keys] = p
                    self._by_first[keys[0]].append(p)
        self._queries = {r.name: describe(r) for r in ruleset.rules}

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.ruleset.rules

    def _hits(self, field: str, text: str) -> dict[tuple[str, ...], list[Hit]]:
        found: dict[tuple[str, ...], list[Hit]] = defaultdict(list)
        toks = tokens(text)
        keys = [t.key for t in toks]
        for i, key in enumerate(keys):
            for p in self._by_first.get(key, ()):
                n = len(p.keys)
                if tuple(keys[i:i + n]) == p.keys:
                    start, end = toks[i].start, toks[i + n - 1].end
                    found[p.keys].append(Hit(field, p.text, start, end, text[start:end]))
        return found

    def match(self, article: Article) -> list[Match]:
        wanted = {f for r in self.rules for f in r.fields}
        hits_by_field = {f: self._hits(f, article.field_text(f)) for f in FIELDS if f in wanted}
        out: list[Match] = []
        for rule in self.rules:
            if rule.feeds and article.feed not in rule.feeds:
                continue

            def hits_for(phrase: str, rule: Rule = rule) -> list[Hit]:
                keys = phrase_keys(phrase)
                return [h for f in rule.fields for h in hits_by_field[f].get(keys, ())]

            if any(hits_for(p) for p in rule.none):
                continue
            any_hits = [h for p in rule.any for h in hits_for(p)]
            if rule.any and not any_hits:
                continue
            all_hits = [hits_for(p) for p in rule.all]
            if not all(all_hits):
                continue
            hits = any_hits + [h for hs in all_hits for h in hs]
            order = {f: i for i, f in enumerate(FIELDS)}
            hits.sort(key=lambda h: (order[h.field], h.start))
            first = hits[0]
            text, _, _ = snippet(article.field_text(first.field), first.start, first.end)
            out.append(Match(rule=rule.name, hits=tuple(hits), field=first.field,
                             snippet=text, query=self._queries[rule.name]))
        return out


def compile_rules(ruleset: RuleSet) -> CompiledRules:
    return CompiledRules(ruleset)
