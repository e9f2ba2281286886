"""A rule's boolean query, evaluated on the literal hits found in one article.

The tree here mirrors the query tree (query.py) with each leaf bound to the ids
of its literals (compile.py). Evaluating returns the hits that make the query
true (the words to show people), or None when it is false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from watcher.rules.query import And, Leaf, Node, Not, Or

# (leaf, field, first word, last word); keyword hits have -1, -1
LeafHit = tuple["Bound", str, int, int]
RawHits = Mapping[int, Sequence[tuple[str, int, int]]]


@dataclass(frozen=True)
class Bound:
    """A leaf bound to its literal ids."""

    text: str
    fields: tuple[str, ...]
    lids: tuple[int, ...]
    slop: int = 0
    keyword: bool = False


@dataclass(frozen=True)
class BAnd:
    children: tuple[BNode, ...]


@dataclass(frozen=True)
class BOr:
    children: tuple[BNode, ...]


@dataclass(frozen=True)
class BNot:
    child: BNode


BNode = Bound | BAnd | BOr | BNot


def bind(node: Node, bind_leaf: Callable[[Leaf], Bound]) -> BNode:
    if isinstance(node, And):
        return BAnd(tuple(bind(c, bind_leaf) for c in node.children))
    if isinstance(node, Or):
        return BOr(tuple(bind(c, bind_leaf) for c in node.children))
    if isinstance(node, Not):
        return BNot(bind(node.child, bind_leaf))
    return bind_leaf(node)


def positive_leaves(node: BNode, negated: bool = False) -> list[Bound]:
    if isinstance(node, BAnd | BOr):
        return [leaf for c in node.children for leaf in positive_leaves(c, negated)]
    if isinstance(node, BNot):
        return positive_leaves(node.child, not negated)
    return [] if negated else [node]


def evaluate(node: BNode, hits: RawHits) -> list[LeafHit] | None:
    """The hits that make `node` true, or None if it is false."""
    if isinstance(node, BAnd):
        out: list[LeafHit] = []
        for c in node.children:
            found = evaluate(c, hits)
            if found is None:
                return None
            out.extend(found)
        return out
    if isinstance(node, BOr):
        any_true = False
        out = []
        for c in node.children:
            found = evaluate(c, hits)
            if found is not None:
                any_true = True
                out.extend(found)
        return out if any_true else None
    if isinstance(node, BNot):
        return [] if evaluate(node.child, hits) is None else None
    if node.slop:
        near = _near(node, hits)
        return near or None
    found = [(node, f, a, b) for lid in node.lids for (f, a, b) in hits.get(lid, ())
             if f in node.fields]
    return found or None


def _near(leaf: Bound, hits: RawHits) -> list[LeafHit]:
    """Lucene's sloppy phrase: words within `slop` moves of the phrase, any order.

    Word k of the phrase at position p has the offset p - k; the phrase matches
    when its words' offsets lie within `slop` of each other (a swap of two
    neighbours costs 2, as in Lucene).
    """
    out: list[LeafHit] = []
    n = len(leaf.lids)
    for field in leaf.fields:
        lists = [[a for (f, a, _) in hits.get(lid, ()) if f == field] for lid in leaf.lids]
        if not all(lists):
            continue
        events = sorted((p - k, k, p) for k, ps in enumerate(lists) for p in ps)
        count = [0] * n
        covered = left = 0
        for right in range(len(events)):
            k = events[right][1]
            if count[k] == 0:
                covered += 1
            count[k] += 1
            while events[right][0] - events[left][0] > leaf.slop:
                k_left = events[left][1]
                count[k_left] -= 1
                if count[k_left] == 0:
                    covered -= 1
                left += 1
            if covered < n:
                continue
            chosen: dict[int, int] = {}
            for _, k2, p2 in events[left:right + 1]:
                chosen[k2] = p2
            positions = list(chosen.values())
            if len(set(positions)) == n:
                out.append((leaf, field, min(positions), max(positions)))
                count = [0] * n
                covered, left = 0, right + 1
    return out
