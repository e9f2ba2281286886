"""Compile a rule set once; match articles against all of it in one pass per field."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from watcher.core.models import FIELDS, Article, Hit, Match, Rule
from watcher.core.text import WordBounds, language_code
from watcher.rules.compile import LiteralIndex, literals_of
from watcher.rules.evaluate import BNode, Bound, RawHits, bind, evaluate, positive_leaves
from watcher.rules.query import KEYWORD_FIELDS, TEXT_FIELDS, Leaf, Prefix, rule_tree
from watcher.rules.ruleset import RuleSet
from watcher.rules.snippet import snippet

_FIELD_ORDER = {f: i for i, f in enumerate(TEXT_FIELDS)}


def describe(rule: Rule) -> str:
    """The rule as a Lucene-style query, so an alert can say what fired it."""

    def group(phrases: tuple[str, ...], op: str) -> str:
        quoted = [f'"{p}"' for p in phrases]
        return quoted[0] if len(quoted) == 1 else "(" + f" {op} ".join(quoted) + ")"

    parts = [f"({rule.query})" if rule.any or rule.all or rule.none else rule.query] \
        if rule.query else []
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


def field_text(article: Article, name: str) -> str:
    """The text of a field rules can search (never anything but these)."""
    if name == "author":
        return article.author or ""
    if name == "url":
        return article.url or ""
    return article.field_text(name)


def article_language(language: str | None) -> str:
    """'en-GB' -> 'en'; unknown -> 'und' (what a rule's `languages` compares)."""
    if not language:
        return "und"
    return language.replace("_", "-").split("-")[0].strip().lower() or "und"


def _shown(text: str) -> str:
    """A leaf as people wrote it, without the quotes of a plain phrase."""
    if len(text) > 1 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


class CompiledRules:
    """Every literal of every rule in one index; each rule's query bound to it.

    Matching scans each field once per normalisation in use, then evaluates
    only the rules that had a hit, so the cost grows with the article's length
    and its hits, not with the number of rules.
    """

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._index = LiteralIndex()
        self._trees: list[BNode] = []
        self._triggers: dict[int, list[int]] = defaultdict(list)
        self._queries = {r.name: describe(r) for r in ruleset.rules}
        for i, rule in enumerate(ruleset.rules):
            tree = ruleset.trees.get(rule.name) if ruleset.trees else None
            bound = bind(tree if tree is not None else rule_tree(rule),
                         lambda leaf, rule=rule: self._bind(leaf, rule))  # type: ignore[misc]
            self._trees.append(bound)
            for leaf in positive_leaves(bound):
                if leaf.lids:
                    self._triggers[leaf.lids[0]].append(i)
        self._index.freeze()

    def _bind(self, leaf: Leaf, rule: Rule) -> Bound:
        lits = literals_of(leaf, rule.stem, rule.accents != "exact")
        lids = tuple(self._index.add(lit, leaf.fields) for lit in lits)
        keyword = all(f in KEYWORD_FIELDS for f in leaf.fields)
        slop = 0 if keyword or isinstance(leaf, Prefix) else getattr(leaf, "slop", 0)
        return Bound(text=leaf.text, fields=leaf.fields, lids=lids, slop=slop,
                     keyword=keyword)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self.ruleset.rules

    def warm(self, language: str | None = None) -> None:
        """Build the automata for a language now (default English), not on first match."""
        self._index.automata(language_code(language))

    def literal_hits(self, article: Article) -> tuple[dict[str, str], RawHits,
                                                      Mapping[str, WordBounds]]:
        """The article's searchable fields, every literal hit in them and each field's
        word offsets: what `match` evaluates (and watcher.rules.explain shows)."""
        fields = {f: field_text(article, f) for f in TEXT_FIELDS}
        hits, offsets = self._index.find(article, fields)
        return fields, hits, offsets

    def tree(self, rule: str) -> BNode:
        """A rule's query bound to this index's literals."""
        return self._trees[[r.name for r in self.rules].index(rule)]

    def match(self, article: Article) -> list[Match]:
        fields, hits, offsets = self.literal_hits(article)
        if not hits:
            return []
        candidates = sorted({i for lid in hits for i in self._triggers.get(lid, ())})
        language = article_language(article.language)
        out: list[Match] = []
        for i in candidates:
            rule = self.rules[i]
            if rule.feeds and article.feed not in rule.feeds:
                continue
            if rule.tags and not set(rule.tags) & set(article.tags):
                continue
            if rule.languages and language not in rule.languages:
                continue
            found = evaluate(self._trees[i], hits)
            if found is None:
                continue
            seen: set[tuple[str, int, int]] = set()
            text_hits: list[Hit] = []
            for leaf, f, first, last in found:
                if leaf.keyword or (f, first, last) in seen:
                    continue
                seen.add((f, first, last))
                ends = offsets[f]
                start, end = int(ends[2 * first]), int(ends[2 * last + 1])
                text_hits.append(Hit(f, _shown(leaf.text), start, end, fields[f][start:end]))
            if len(text_hits) < rule.min_hits:
                continue
            text_hits.sort(key=lambda h: (_FIELD_ORDER[h.field], h.start))
            if text_hits:
                first_hit = text_hits[0]
                snip, _, _ = snippet(fields[first_hit.field], first_hit.start, first_hit.end)
                field = first_hit.field
            else:  # only feed: / tag: terms matched: show the title
                field = "title" if article.title else "summary"
                snip = snippet(fields[field], 0, 0)[0] if fields[field] else ""
            out.append(Match(rule=rule.name, hits=tuple(text_hits), field=field,
                             snippet=snip, query=self._queries[rule.name]))
        return out


def compile_rules(ruleset: RuleSet) -> CompiledRules:
    return CompiledRules(ruleset)
