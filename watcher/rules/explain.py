"""Why a rule did or did not match an article: its query as a tree, each term,
phrase and operator with whether it held, and where (field, word position, the
words as written and as the matcher saw them after folding and stemming).

Uses the daemon's own matcher (watcher.rules.match) on the one rule, so what it
says is what matching decided. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from watcher.core.models import Article, Rule
from watcher.core.text import WordBounds, word_keys
from watcher.rules.evaluate import BAnd, BNode, BNot, BOr, Bound, RawHits, evaluate
from watcher.rules.match import CompiledRules, article_language
from watcher.rules.ruleset import RuleSet

_SHOWN_PLACES = 20  # where a term held: enough to see why, not the whole article


@dataclass(frozen=True)
class Place:
    """One place a term held."""

    field: str
    word: int  # position of its first word in the field (0-based); -1 for feed:/tag:
    written: str  # the words as the article writes them
    seen_as: str  # as the matcher compared them (folded, stemmed)


@dataclass(frozen=True)
class Step:
    """A node of the evaluation tree."""

    kind: str  # "and" | "or" | "not" | "term" | "feeds" | "tags" | "languages" | "min_hits"
    text: str  # the term as written, or the operator
    held: bool
    fields: tuple[str, ...] = ()
    places: tuple[Place, ...] = ()
    children: tuple[Step, ...] = field(default=())


@dataclass(frozen=True)
class Explanation:
    rule: str
    article_id: int | None
    matched: bool  # what the matcher decided
    query: Step
    conditions: tuple[Step, ...]  # the rule's feeds, tags, languages and min_hits


def _places(leaf: Bound, found: list[tuple[Bound, str, int, int]] | None,
            fields: Mapping[str, str], offsets: Mapping[str, WordBounds],
            rule: Rule, article: Article) -> tuple[Place, ...]:
    out: list[Place] = []
    for _, f, first, last in (found or [])[:_SHOWN_PLACES]:
        if first < 0:  # feed: or tag: hold as a whole value
            value = article.feed if f == "feed" else ", ".join(article.tags)
            out.append(Place(f, -1, value, value))
            continue
        ends = offsets[f]
        written = fields[f][int(ends[2 * first]):int(ends[2 * last + 1])]
        keys = word_keys(written, article.language, rule.stem, rule.accents != "exact")
        out.append(Place(f, first, written, " ".join(keys)))
    return tuple(out)


def _step(node: BNode, hits: RawHits, fields: Mapping[str, str],
          offsets: Mapping[str, WordBounds], rule: Rule, article: Article) -> Step:
    if isinstance(node, BAnd | BOr):
        children = tuple(_step(c, hits, fields, offsets, rule, article) for c in node.children)
        if isinstance(node, BAnd):
            return Step("and", "AND", all(c.held for c in children), children=children)
        return Step("or", "OR", any(c.held for c in children), children=children)
    if isinstance(node, BNot):
        child = _step(node.child, hits, fields, offsets, rule, article)
        return Step("not", "NOT", not child.held, children=(child,))
    found = evaluate(node, hits)
    return Step("term", node.text, found is not None, node.fields,
                _places(node, found, fields, offsets, rule, article))


def explain(ruleset: RuleSet, rule_name: str, article: Article) -> Explanation:
    """The evaluation of one rule of `ruleset` on `article`; KeyError when there is no
    rule of that name."""
    rule = next((r for r in ruleset.rules if r.name == rule_name), None)
    if rule is None:
        raise KeyError(rule_name)
    trees = {rule.name: ruleset.trees[rule.name]} if ruleset.trees else None
    compiled = CompiledRules(RuleSet(rules=(rule,), source=ruleset.source, trees=trees))
    fields, hits, offsets = compiled.literal_hits(article)
    query = _step(compiled.tree(rule.name), hits, fields, offsets, rule, article)
    language = article_language(article.language)
    conditions: list[Step] = []
    if rule.feeds:
        conditions.append(Step("feeds", ", ".join(rule.feeds), article.feed in rule.feeds))
    if rule.tags:
        conditions.append(Step("tags", ", ".join(rule.tags),
                               bool(set(rule.tags) & set(article.tags))))
    if rule.languages:
        conditions.append(Step("languages", ", ".join(rule.languages),
                               language in rule.languages))
    if rule.min_hits > 1:
        text_places = {(p.field, p.word, p.written) for s in _leaves(query) if s.held
                       for p in s.places if p.word >= 0}
        conditions.append(Step("min_hits", str(rule.min_hits),
                               len(text_places) >= rule.min_hits))
    matched = any(m.rule == rule.name for m in compiled.match(article))
    return Explanation(rule.name, article.id, matched, query, tuple(conditions))


def _leaves(step: Step) -> list[Step]:
    if step.kind == "term":
        return [step]
    return [leaf for c in step.children for leaf in _leaves(c)]
