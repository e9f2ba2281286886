"""Lucene query text parsed by luqum and converted to watcher.rules.query's tree.

Kept apart from the tree so that luqum (and its parser tables) is imported only when
query text is parsed, never to compile or match a rule set whose trees are known.
"""

from __future__ import annotations

import logging
import re

from luqum import tree
from luqum.exceptions import IllegalCharacterError, ParseError, ParseSyntaxError
from luqum.parser import parser as _luqum

from watcher.rules.query import (
    MAX_QUERY_DEPTH,
    QUERY_FIELDS,
    And,
    Node,
    Not,
    Operator,
    Or,
    Prefix,
    QueryError,
    Regex,
    Terms,
)

# luqum's parser generator talks about its tables on the first parse.
logging.getLogger("luqum").setLevel(logging.ERROR)
_CURLY_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "«": '"', "»": '"'})
_ESCAPED = re.compile(r"\\(.)")


def parse_lucene(text: str, fields: tuple[str, ...] = ("title", "summary", "body"),
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
