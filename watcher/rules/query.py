"""Lucene query text -> our small query tree (parsed by luqum, in watcher.rules.lucene).

The tree has three kinds of leaves (words/phrases, prefixes, regular expressions)
and three operators (And, Or, Not). Each leaf knows the fields it looks in.
Lucene's implicit operator between bare clauses is resolved when parsing: with the
default ``OR``, ``+term`` is required, ``-term`` / ``NOT term`` is forbidden and the
other clauses are optional, at least one of them needed when nothing is required
(Lucene's boolean query); with ``AND`` every bare clause is required.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from watcher.core.models import Rule

TEXT_FIELDS: tuple[str, ...] = ("title", "summary", "body", "author", "url")
KEYWORD_FIELDS: tuple[str, ...] = ("feed", "tag")
QUERY_FIELDS: tuple[str, ...] = (*TEXT_FIELDS, *KEYWORD_FIELDS)
Operator = Literal["OR", "AND"]
# Far more than a person writes; far less than Python's recursion limit, which the
# recursive steps after parsing (convert, compile, match, explain) would meet.
MAX_QUERY_DEPTH = 100


class QueryError(ValueError):
    """A query that cannot be used; `pos` is the 0-based offset in the query text."""

    def __init__(self, message: str, pos: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True)
class Terms:
    """A word or a quoted phrase; `slop` > 0 for proximity ("a b"~3)."""

    text: str  # as written, for people
    words: str  # the text to tokenise
    fields: tuple[str, ...]
    slop: int = 0
    pos: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Prefix:
    text: str
    prefix: str
    fields: tuple[str, ...]
    pos: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Regex:
    text: str
    pattern: str
    fields: tuple[str, ...]
    pos: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    child: Node


Leaf = Terms | Prefix | Regex
Node = Terms | Prefix | Regex | And | Or | Not


def leaves(node: Node, negated: bool = False) -> Iterator[tuple[Leaf, bool]]:
    """Every leaf with whether it sits under an odd number of NOTs."""
    if isinstance(node, And | Or):
        for c in node.children:
            yield from leaves(c, negated)
    elif isinstance(node, Not):
        yield from leaves(node.child, not negated)
    else:
        yield node, negated


def parse_query(text: str, fields: tuple[str, ...] = ("title", "summary", "body"),
                default_operator: Operator = "OR") -> Node:
    """Parse Lucene query syntax; raise QueryError with the offset of the problem."""
    # luqum and its parser tables load only when there is query text to parse: a rule
    # set from the rules cache carries its trees already parsed.
    from watcher.rules.lucene import parse_lucene

    return parse_lucene(text, fields, default_operator)


def to_text(node: Node) -> str:
    """The tree back as a query, for messages and tests."""
    if isinstance(node, And | Or):
        op = " AND " if isinstance(node, And) else " OR "
        return "(" + op.join(to_text(c) for c in node.children) + ")"
    if isinstance(node, Not):
        return f"NOT {to_text(node.child)}"
    return f"{'|'.join(node.fields)}:{node.text}"


def rule_tree(rule: Rule) -> Node:
    """The rule's whole condition: its query ANDed with the any/all/none shorthand."""
    parts: list[Node] = []
    if rule.query:
        op: Operator = "AND" if rule.default_operator.upper() == "AND" else "OR"
        parts.append(parse_query(rule.query, rule.fields, op))

    def phrase(p: str) -> Terms:
        return Terms(text=f'"{p}"', words=p, fields=rule.fields)

    if rule.any:
        parts.append(phrase(rule.any[0]) if len(rule.any) == 1
                     else Or(tuple(phrase(p) for p in rule.any)))
    parts.extend(phrase(p) for p in rule.all)
    if rule.none:
        parts.append(Not(phrase(rule.none[0]) if len(rule.none) == 1
                         else Or(tuple(phrase(p) for p in rule.none))))
    if not parts:
        raise QueryError("the rule needs a query (or phrases in any/all)")
    return parts[0] if len(parts) == 1 else And(tuple(parts))


def true_without_terms(node: Node) -> bool:
    """Would the query match an article that contains none of its terms?"""
    if isinstance(node, And):
        return all(true_without_terms(c) for c in node.children)
    if isinstance(node, Or):
        return any(true_without_terms(c) for c in node.children)
    if isinstance(node, Not):
        return not true_without_terms(node.child)
    return False
