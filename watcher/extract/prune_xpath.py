"""trafilatura's pruning XPath expressions, evaluated in Python instead of libxml2.

trafilatura removes boilerplate from each page with about ten XPath expressions
whose predicates call EXSLT's `re:test`. lxml runs every such call as a callback
from libxml2 into Python, with the attribute node-sets converted on the way: these
expressions were a large share of a page's extraction (benchmarks/RESULTS.md).

This module compiles the small XPath subset those expressions use into Python
predicates over lxml elements, which give the same elements in the same order
(tests compare both on random and real trees), and puts them in place of the
XPath objects in trafilatura's lists. It reads the expressions' own text, so a
trafilatura release that changes a pattern brings its new pattern along; an
expression outside the subset stays with libxml2.

The subset: `.//*` or `.//name`, then predicates made of `or`, `and`, `not()`,
parentheses, `self::name`, `@a` and unions `@a|@b`, `.//name`, `'literal'`,
`@a = 'literal'`, and the functions `re:test`, `contains`, `starts-with` and
`translate`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml.etree import Element

# The lists trafilatura hands to `prune_unwanted_nodes`, which only calls each
# expression on an element and deletes what it returns.
PRUNE_LISTS = ("REMOVE_COMMENTS_XPATH", "REMOVE_COMMENTS_AND_LISTS_XPATH",
               "RAW_TREE_PRUNE_XPATH", "OVERALL_DISCARD_XPATH", "TEASER_DISCARD_XPATH",
               "PRECISION_DISCARD_XPATH", "DISCARD_IMAGE_ELEMENTS")

_TOKEN = re.compile(r"""\s*(?:
    (?P<lit>'[^']*'|"[^"]*")
  | (?P<op>\.//|::|[\[\]()@|=,*])
  | (?P<name>[A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)
)""", re.VERBOSE)

Node = tuple[Any, ...]
Predicate = Callable[[Any], bool]
StringOf = Callable[[Any], str]


class Unsupported(ValueError):
    """The expression uses XPath outside the subset this module evaluates."""


def _tokens(path: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, end = 0, len(path.rstrip())
    while pos < end:
        m = _TOKEN.match(path, pos)
        if m is None or m.end() == pos:
            raise Unsupported(f"unexpected text at {pos}: {path[pos:pos + 20]!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        out.append((kind, value[1:-1] if kind == "lit" else value))
        pos = m.end()
    return out


class _Parser:
    """Recursive descent over the tokens; builds tuples, compiled afterwards."""

    def __init__(self, path: str) -> None:
        self.tokens = _tokens(path)
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        token = self.peek()
        if token is None or (value is not None and token[1] != value) or \
                (kind is not None and token[0] != kind):
            raise Unsupported(f"expected {value or kind}, found {token}")
        self.i += 1
        return token[1]

    def at(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[1] == value and token[0] != "lit"

    def path(self) -> tuple[str, list[Node]]:
        self.take(".//")
        step = "*" if self.at("*") else self.take(kind="name")
        if step == "*":
            self.take("*")
        predicates = []
        while self.at("["):
            self.take("[")
            predicates.append(self.or_expr())
            self.take("]")
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()} after the predicates")
        return step, predicates

    def or_expr(self) -> Node:
        return self._joined("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._joined("and", self.comparison)

    def _joined(self, word: str, operand: Callable[[], Node]) -> Node:
        parts = [operand()]
        while self.at(word):
            self.take(word)
            parts.append(operand())
        return parts[0] if len(parts) == 1 else (word, parts)

    def comparison(self) -> Node:
        left = self.value()
        if self.at("="):
            self.take("=")
            return ("eq", left, self.take(kind="lit"))
        return left

    def value(self) -> Node:
        token = self.peek()
        if token is None:
            raise Unsupported("the expression ends inside a predicate")
        kind, text = token
        if kind == "lit":
            self.i += 1
            return ("lit", text)
        if text == "(":
            self.take("(")
            inner = self.or_expr()
            self.take(")")
            return inner
        if text == "@":
            names = []
            while True:
                self.take("@")
                names.append(self.take(kind="name"))
                if not self.at("|"):
                    return ("attrs", tuple(names))
                self.take("|")
        if text == ".//":
            self.take(".//")
            return ("desc", self.take(kind="name"))
        if kind == "name" and text == "self":
            self.take("self")
            self.take("::")
            return ("self", self.take(kind="name"))
        if kind == "name":
            self.i += 1
            self.take("(")
            args = [] if self.at(")") else [self.or_expr()]
            while self.at(","):
                self.take(",")
                args.append(self.or_expr())
            self.take(")")
            return ("call", text, args)
        raise Unsupported(f"unexpected {token}")


# --- compilation into closures over lxml elements ----------------------------------


def _first_of(names: tuple[str, ...]) -> Callable[[Any], str | None]:
    """The value of the first of these attributes the element has, in the element's
    own attribute order (XPath's document order), or None."""
    if len(names) == 1:
        (name,) = names
        return lambda el: el.get(name)

    def first(el: Any) -> str | None:
        found = [name for name in names if el.get(name) is not None]
        if not found:
            return None
        if len(found) > 1:
            found = [key for key in el.keys() if key in found]  # noqa: SIM118 (order)
        value: str = el.get(found[0])
        return value
    return first


def _string(node: Node) -> StringOf:
    """An XPath string value: a node-set's first node, or '' when it is empty."""
    kind = node[0]
    if kind == "lit":
        value = node[1]
        return lambda el: value
    if kind == "attrs":
        first = _first_of(node[1])
        return lambda el: first(el) or ""
    if kind == "call" and node[1] == "translate" and len(node[2]) == 3:
        source = _string(node[2][0])
        table = _translate_table(node[2])
        return lambda el: source(el).translate(table)
    raise Unsupported(f"no string value for {node[0]} {node[1]!r}")


def _literal(node: Node) -> str:
    if node[0] != "lit":
        raise Unsupported(f"a literal was expected, found {node[0]}")
    return str(node[1])


def _regex(args: list[Node]) -> re.Pattern[str]:
    """re:test's pattern (second argument) with its flags (third), compiled as lxml's
    EXSLT support compiles it."""
    flags = re.IGNORECASE if len(args) == 3 and "i" in _literal(args[2]) else 0
    return re.compile(_literal(args[1]), re.UNICODE | flags)


def _translate_table(args: list[Node]) -> dict[int, int | None]:
    """translate()'s table, from its second and third arguments."""
    return _translation(_literal(args[1]), _literal(args[2]))


def _translation(source: str, target: str) -> dict[int, int | None]:
    table: dict[int, int | None] = {}
    for i, char in enumerate(source):
        # XPath: the first occurrence of a character decides; beyond the target's length it goes
        table.setdefault(ord(char), ord(target[i]) if i < len(target) else None)
    return table


def _bool(node: Node) -> Predicate:
    kind = node[0]
    if kind in ("or", "and"):
        return _chain(kind, [_bool(p) for p in node[1]])
    if kind == "self":
        tag = node[1]
        return lambda el: el.tag == tag
    if kind == "attrs":
        names = node[1]
        return lambda el: any(el.get(n) is not None for n in names)
    if kind == "desc":
        tag = node[1]
        return lambda el: next(el.iterdescendants(tag), None) is not None
    if kind == "lit":
        return (lambda el: True) if node[1] else (lambda el: False)
    if kind == "eq":
        left, value = node[1], node[2]
        if left[0] == "attrs":  # a node-set equals a string if any of its nodes does
            names = left[1]
            return lambda el: any(el.get(n) == value for n in names)
        string = _string(left)
        return lambda el: string(el) == value
    if kind == "call":
        return _call(node[1], node[2])
    raise Unsupported(f"no boolean value for {kind}")


def _chain(kind: str, parts: list[Predicate]) -> Predicate:
    """`a or b or c` as nested closures: a call per part beats a generator per element."""
    first = parts[0]
    if len(parts) == 1:
        return first
    rest = _chain(kind, parts[1:])
    if kind == "or":
        return lambda el: first(el) or rest(el)
    return lambda el: first(el) and rest(el)


def _call(name: str, args: list[Node]) -> Predicate:
    if name == "not" and len(args) == 1:
        inner = _bool(args[0])
        return lambda el: not inner(el)
    if name in ("contains", "starts-with") and len(args) == 2:
        needle = _literal(args[1])
        if args[0][0] == "attrs" and len(args[0][1]) == 1 and needle:
            attribute = args[0][1][0]  # the common case, without building ''
            if name == "contains":
                return lambda el: needle in (el.get(attribute) or "")
            return lambda el: (el.get(attribute) or "").startswith(needle)
        haystack = _string(args[0])
        if name == "contains":
            return lambda el: needle in haystack(el)
        return lambda el: haystack(el).startswith(needle)
    if name == "re:test" and len(args) in (2, 3):
        # What lxml's EXSLT re:test does: Python's re.search on the string value.
        search = _regex(args).search
        on_empty = search("") is not None
        if args[0][0] == "attrs":
            first = _first_of(args[0][1])

            def test(el: Any) -> bool:
                value = first(el)
                return on_empty if not value else search(value) is not None
            return test
        subject = _string(args[0])
        return lambda el: search(subject(el)) is not None
    raise Unsupported(f"function {name}() with {len(args)} argument(s)")


def _attributes(node: Node) -> set[str]:
    """Every attribute name the expression reads."""
    if node[0] == "attrs":
        return set(node[1])
    names: set[str] = set()
    for part in node[1:]:
        for child in part if isinstance(part, list) else [part]:
            if isinstance(child, tuple):
                names |= _attributes(child)
    return names


def _bare_string(node: Node) -> str | None:
    """The string value on an element without any of the attributes read, if known."""
    if node[0] == "lit":
        return str(node[1])
    if node[0] == "attrs":
        return ""
    if node[0] == "call" and node[1] == "translate" and len(node[2]) == 3:
        source = _bare_string(node[2][0])
        return None if source is None else source.translate(_translate_table(node[2]))
    return None


def _bare(node: Node) -> bool | None:
    """The predicate's value on an element without any of the attributes it reads,
    when that does not depend on the element's name or descendants (else None)."""
    kind = node[0]
    if kind == "attrs":
        return False
    if kind == "lit":
        return bool(node[1])
    if kind in ("or", "and"):
        values = [_bare(p) for p in node[1]]
        decisive: bool = kind == "or"  # True decides an `or`, False an `and`
        if decisive in values:
            return decisive
        return None if None in values else not decisive
    if kind == "eq":
        if node[1][0] == "attrs":
            return False  # no attribute: an empty node-set equals nothing
        left = _bare_string(node[1])
        return None if left is None else left == node[2]
    if kind == "call":
        name, args = node[1], node[2]
        if name == "not":
            inner = _bare(args[0])
            return None if inner is None else not inner
        subject = _bare_string(args[0]) if args else None
        if subject is None:
            return None
        if name == "contains":
            return _literal(args[1]) in subject
        if name == "starts-with":
            return subject.startswith(_literal(args[1]))
        if name == "re:test":
            return _regex(args).search(subject) is not None
    return None


def _tag_filter(predicate: Node) -> tuple[str, ...] | None:
    """The element names a predicate made only of `self::` tests allows."""
    if predicate[0] == "self":
        return (predicate[1],)
    if predicate[0] == "or" and all(p[0] == "self" for p in predicate[1]):
        return tuple(p[1] for p in predicate[1])
    return None


class PrunePath:
    """Called like the lxml XPath it replaces: element in, matching descendants out,
    in document order. Anything but an element goes to the original XPath."""

    def __init__(self, xpath: Any) -> None:
        self.xpath = xpath
        self.path: str = xpath.path
        step, predicates = _Parser(self.path).path()
        tags: tuple[str, ...] | None = None if step == "*" else (step,)
        if step == "*" and predicates and (tags := _tag_filter(predicates[0])) is not None:
            predicates = predicates[1:]
        # lxml's Element as a tag: elements only (no comments), as `*` selects
        self._tags: tuple[Any, ...] = tags or (Element,)
        self._test = _chain("and", [_bool(p) for p in predicates]) if predicates else None
        # An element with none of the attributes the predicates read fails them
        # (most elements, for most of these expressions): one C call tells.
        self._needs: frozenset[str] | None = None
        if predicates and _bare(("and", predicates)) is False:
            self._needs = frozenset(set().union(*map(_attributes, predicates)))

    def __call__(self, node: Any, **variables: Any) -> list[Any]:
        iterate = getattr(node, "iterdescendants", None)
        if iterate is None or variables:
            return self.xpath(node, **variables)  # type: ignore[no-any-return]
        candidates = iterate(*self._tags)
        test = self._test
        if test is None:
            return list(candidates)
        needs = self._needs
        if needs is None:
            return [el for el in candidates if test(el)]
        return [el for el in candidates if not needs.isdisjoint(el.keys()) and test(el)]

    def __repr__(self) -> str:
        return f"PrunePath({' '.join(self.path.split())[:60]!r}...)"


@dataclass(frozen=True)
class Installed:
    """What `install()` did with trafilatura's pruning expressions."""

    replaced: int  # now evaluated in Python
    total: int  # in trafilatura's pruning lists
    left: tuple[str, ...] = ()  # outside the subset: still libxml2's, the slow way
    missing: tuple[str, ...] = ()  # lists of PRUNE_LISTS trafilatura no longer has

    @property
    def complete(self) -> bool:
        return self.replaced == self.total and not self.missing


def install() -> Installed:
    """Put Python versions in place of trafilatura's pruning expressions, in its own
    lists (every module that imported a list sees the change). Says how many now
    run in Python and which stay with libxml2; a second call changes nothing."""
    from trafilatura import xpaths

    replaced, total, left, missing = 0, 0, [], []
    for list_name in PRUNE_LISTS:
        expressions = getattr(xpaths, list_name, None)
        if not isinstance(expressions, list):
            missing.append(list_name)
            continue
        for i, expression in enumerate(expressions):
            total += 1
            if isinstance(expression, PrunePath):
                replaced += 1
                continue
            path = getattr(expression, "path", None)
            try:
                if path is None:
                    raise Unsupported("not an XPath object")
                expressions[i] = PrunePath(expression)
            except Unsupported:
                left.append(str(path if path is not None else expression))
                continue
            replaced += 1
    return Installed(replaced, total, tuple(left), tuple(missing))
