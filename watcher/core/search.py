"""The archive's everyday search syntax, parsed once and written for each store's
full-text engine (SQLite FTS5, PostgreSQL tsquery). Pure.

    tactical missile            both words (AND is implied)
    "tactical missile"          the phrase
    missile OR rocket           either
    missile -drill              missile, without drill (also: NOT drill)
    missil*                     a word starting with "missil"
    (missile OR rocket) test    parentheses group
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from watcher.core.errors import StoreError


@dataclass(frozen=True)
class Term:
    words: tuple[str, ...]  # one word, or a phrase's words
    prefix: bool = False


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class All:
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Any:
    nodes: tuple[Node, ...]


Node = Term | Not | All | Any

_TOKEN = re.compile(r'\s*(?:(")(?P<phrase>[^"]*)(?P<close>"?)|(?P<paren>[()])|(?P<word>[^\s()"]+))')
_WORD = re.compile(r"\w+")


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(text))


def _tokens(query: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            if not m.group("close"):
                raise StoreError(f"search: cannot run query {query!r}: a quote is not closed")
            out.append(("phrase", m.group("phrase")))
        elif m.group("paren"):
            out.append((m.group("paren"), m.group("paren")))
        elif m.group("word"):
            word = m.group("word")
            out.append(("op", word) if word in ("OR", "AND", "NOT") else ("word", word))
    return out


class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = _tokens(query)
        self.i = 0

    def fail(self, why: str) -> StoreError:
        return StoreError(f"search: cannot run query {self.query!r}: {why}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def any_(self) -> Node:
        nodes = [self.all_()]
        while self.peek() == ("op", "OR"):
            self.i += 1
            nodes.append(self.all_())
        return nodes[0] if len(nodes) == 1 else Any(tuple(nodes))

    def all_(self) -> Node:
        nodes: list[Node] = []
        while (tok := self.peek()) is not None and tok not in (("op", "OR"), (")", ")")):
            if tok == ("op", "AND"):
                self.i += 1
                continue
            nodes.append(self.unary())
        if not nodes:
            raise self.fail("expected a word or a phrase")
        return nodes[0] if len(nodes) == 1 else All(tuple(nodes))

    def unary(self) -> Node:
        kind, value = self.tokens[self.i]
        self.i += 1
        if (kind, value) == ("op", "NOT"):
            inner = self.unary()
            return inner.node if isinstance(inner, Not) else Not(inner)
        if kind == "(":
            node = self.any_()
            if self.peek() != (")", ")"):
                raise self.fail("a parenthesis is not closed")
            self.i += 1
            return node
        if kind == ")":
            raise self.fail("a closing parenthesis without an opening one")
        negate = kind == "word" and value.startswith("-") and len(value) > 1
        if negate:
            value = value[1:]
        prefix = kind == "word" and value.endswith("*")
        words = _words(value)
        if not words:
            raise self.fail(f"{value!r} has no word to search for")
        if kind == "word" and len(words) > 1:  # "tactical-missile": its words, in order
            prefix = False
        term: Node = Term(words, prefix)
        return Not(term) if negate else term


def parse_search(query: str) -> Node:
    """The query's tree; StoreError naming the query when it cannot be read."""
    parser = _Parser(query)
    if not parser.tokens:
        raise parser.fail("empty query")
    node = parser.any_()
    if parser.peek() is not None:
        raise parser.fail("a closing parenthesis without an opening one")
    if not _has_positive(node):
        raise parser.fail("a query must name something to find, not only what to leave out")
    return node


def _has_positive(node: Node) -> bool:
    if isinstance(node, Term):
        return True
    if isinstance(node, Not):
        return False
    if isinstance(node, All):
        return any(_has_positive(n) for n in node.nodes)
    return all(_has_positive(n) for n in node.nodes)


def to_fts5(node: Node) -> str:
    """SQLite FTS5 query text: every word quoted, so no word is read as syntax."""
    if isinstance(node, Term):
        text = '"' + " ".join(node.words) + '"'
        return text + "*" if node.prefix else text
    if isinstance(node, Not):
        raise AssertionError("a negation is written by its AND")
    if isinstance(node, Any):
        return "(" + " OR ".join(to_fts5(n) for n in node.nodes) + ")"
    positive = [n for n in node.nodes if not isinstance(n, Not)]
    negative = [n.node for n in node.nodes if isinstance(n, Not)]
    text = "(" + " AND ".join(to_fts5(n) for n in positive) + ")"
    for n in negative:  # FTS5's NOT is binary: "a NOT b"
        text = f"({text} NOT {to_fts5(n)})"
    return text


def to_tsquery(node: Node) -> str:
    """PostgreSQL tsquery text (to_tsquery): lexemes quoted, phrases with <->."""
    if isinstance(node, Term):
        parts = ["'" + w.replace("'", "''") + "'" for w in node.words]
        if node.prefix:
            parts[-1] += ":*"
        return "(" + " <-> ".join(parts) + ")"
    if isinstance(node, Not):
        return "!" + to_tsquery(node.node)
    joiner = " | " if isinstance(node, Any) else " & "
    return "(" + joiner.join(to_tsquery(n) for n in node.nodes) + ")"
