"""Lucene query text -> our small query tree (parsed by luqum).

The tree has three kinds of leaves (words/phrases, prefixes, regular expressions)
and three operators (And, Or, Not). Each leaf knows the fields it looks in.
Lucene's implicit operator between bare clauses is resolved here: with the
default ``OR``, ``+term`` is required, ``-term`` / ``NOT term`` is forbidden and the
other clauses are optional, at least one of them needed when nothing is required
(Lucene's boolean query); with ``AND`` every bare clause is required.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from luqum import tree
from luqum.exceptions import IllegalCharacterError, ParseError, ParseSyntaxError
from luqum.parser import parser as _luqum

from watcher.core.models import Rule

TEXT_FIELDS: tuple[str, ...] = ("title", "summary", "body", "author", "url")
KEYWORD_FIELDS: tuple[str, ...] = ("feed", "tag")
QUERY_FIELDS: tuple[str, ...] = (*TEXT_FIELDS, *KEYWORD_FIELDS)
Operator = Literal["OR", "AND"]
# Far more than a person writes; far less than Python's recursion limit, which the
# recursive steps after parsing (convert, compile, match, explain) would meet.
MAX_QUERY_DEPTH = 100

# luqum's parser generator talks about its tables on the first parse.
logging.getLogger("luqum").setLevel(logging.ERROR)
_CURLY_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"'})
_ESCAPED = re.compile(r"\\(.)")


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
    if not text.strip():
        raise QueryError("the query is empty", 0)
    try:
        parsed = _luqum.parse(text.translate(_CURLY_QUOTES))
    except IllegalCharacterError as exc:
        pos = _position(str(exc))
        raise QueryError(f"cannot parse the query: {_reason(exc)}", pos) from None
    except ParseSyntaxError as exc:
        pos = _position(str(exc))
        raise QueryError(f"cannot parse the query: {_reason(exc)}",
                         len(text) if pos is None else pos) from None
    except ParseError as exc:
        raise QueryError(f"cannot parse the query: {exc}", None) from None
    _check_depth(parsed)
    return _Converter(default_operator).convert(parsed, fields)


def _check_depth(root: tree.Item) -> None:
    """Refuse a query nested deeper than MAX_QUERY_DEPTH, before anything recurses
    over it (converting, compiling and matching all do). Iterative: depth is the point."""
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_QUERY_DEPTH:
            raise QueryError(f"the query is nested more than {MAX_QUERY_DEPTH} levels deep "
                             "(parentheses, NOT, + and -); write it flatter",
                             getattr(node, "pos", None))
        stack.extend((child, depth + 1) for child in node.children)


def _position(message: str) -> int | None:
    m = re.search(r"at position (\d+)", message)
    return int(m.group(1)) if m else None


def _reason(exc: Exception) -> str:
    msg = str(exc).replace("Syntax error in input : ", "").rstrip("!")
    msg = re.sub(r"\s+at position \d+$", "", msg).replace("unexpected  ", "unexpected ")
    if "unexpected end of expression" in msg:
        return "the query ends too early (an operator without a term, or an open parenthesis)"
    if msg.startswith("Illegal character"):
        return msg.replace("Illegal character", "cannot read") + \
            " (an unclosed quote or an unescaped special character?)"
    return msg


def _unescape(s: str) -> str:
    return _ESCAPED.sub(r"\1", s)


class _Converter:
    def __init__(self, default_operator: Operator) -> None:
        self.default_operator = default_operator

    def convert(self, node: tree.Item, fields: tuple[str, ...]) -> Node:
        pos = getattr(node, "pos", None)
        if isinstance(node, tree.SearchField):
            name = node.name.lower()
            if name not in QUERY_FIELDS:
                raise QueryError(f"unknown field {node.name!r} (use {', '.join(QUERY_FIELDS)})",
                                 pos)
            return self.convert(node.expr, (name,))
        if isinstance(node, tree.Group | tree.FieldGroup):
            return self.convert(node.expr, fields)
        if isinstance(node, tree.Boost):  # scoring only: no effect on whether a rule fires
            return self.convert(node.expr, fields)
        if isinstance(node, tree.Proximity):
            if not isinstance(node.term, tree.Phrase):
                raise QueryError("~N (proximity) applies to a quoted phrase", pos)
            inner = self.convert(node.term, fields)
            assert isinstance(inner, Terms)
            slop = int(float(node.degree)) if node.degree is not None else 1
            return Terms(text=f"{inner.text}~{slop}", words=inner.words, fields=fields,
                         slop=slop, pos=pos)
        if isinstance(node, tree.Phrase):
            words = _unescape(node.value[1:-1])
            return Terms(text=node.value, words=words, fields=fields, pos=pos)
        if isinstance(node, tree.Regex):
            return Regex(text=node.value, pattern=node.value[1:-1].replace("\\/", "/"),
                         fields=fields, pos=pos)
        if isinstance(node, tree.Fuzzy):
            raise QueryError(f"fuzzy terms ({node}) are not supported; use a phrase, a "
                             "trailing * or a /regular expression/", pos)
        if isinstance(node, tree.Range):
            raise QueryError(f"ranges ({node}) are not supported", pos)
        if isinstance(node, tree.Word):
            return self._word(node, fields)
        if isinstance(node, tree.Not | tree.Prohibit):
            return Not(self.convert(node.a, fields))
        if isinstance(node, tree.Plus):
            return self.convert(node.a, fields)
        if isinstance(node, tree.AndOperation):
            return And(tuple(self.convert(c, fields) for c in node.children))
        if isinstance(node, tree.OrOperation):
            return Or(tuple(self.convert(c, fields) for c in node.children))
        if isinstance(node, tree.UnknownOperation | tree.BoolOperation):
            return self._implicit(node.children, fields)
        raise QueryError(f"{type(node).__name__.lower()} ({node}) is not supported", pos)

    def _word(self, node: tree.Word, fields: tuple[str, ...]) -> Node:
        value, pos = node.value, node.pos
        if value in ("&&", "||", "!") or value.startswith("!"):
            raise QueryError(f"{value!r}: write AND, OR and NOT (or +term / -term)", pos)
        if value == "*":
            raise QueryError("'*' alone would match every article", pos)
        body = value[:-1] if value.endswith("*") and not value.endswith("\\*") else value
        if re.search(r"(?<!\\)[*?]", body):
            raise QueryError(f"{value!r}: only a trailing * is supported as a wildcard "
                             "(use a /regular expression/ for more)", pos)
        if body is not value:
            return Prefix(text=value, prefix=_unescape(body), fields=fields, pos=pos)
        return Terms(text=value, words=_unescape(value), fields=fields, pos=pos)

    def _implicit(self, children: tuple[tree.Item, ...], fields: tuple[str, ...]) -> Node:
        must: list[Node] = []
        should: list[Node] = []
        must_not: list[Node] = []
        for child in children:
            if isinstance(child, tree.Plus):
                must.append(self.convert(child.a, fields))
            elif isinstance(child, tree.Prohibit | tree.Not):
                must_not.append(self.convert(child.a, fields))
            elif self.default_operator == "AND":
                must.append(self.convert(child, fields))
            else:
                should.append(self.convert(child, fields))
        parts: list[Node] = list(must)
        if should and not must:
            parts.append(should[0] if len(should) == 1 else Or(tuple(should)))
        parts.extend(Not(n) for n in must_not)
        return parts[0] if len(parts) == 1 else And(tuple(parts))


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
