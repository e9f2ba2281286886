"""From a rule's query, a full-text search that finds every article the rule can
match (and more): the archive's index narrows the candidates, the rule's own
matcher then decides. Pure.

The search is written in watcher.core.search's syntax. Each word becomes a
prefix, cut back from its English stem, because the index stems with its own
stemmer (SQLite's Porter, PostgreSQL's English) while the matcher stems with the
article's language: a prefix shared by the forms of a word finds them all.
What the index cannot look for (regular expressions, feed: and tag:, the author
and url fields, words under NOT, very short words) narrows nothing; a query
that is all such terms gives None: every article is a candidate.
"""

from __future__ import annotations

from watcher.core.text import fold, stem_words, words_of
from watcher.rules.query import And, Node, Not, Or, Prefix, Regex, Terms

_INDEXED = frozenset(("title", "summary", "body"))
_SHORTEST = 4  # words shorter than this narrow nothing (stop words, initials)


def _prefix(word: str) -> str | None:
    folded = fold(word)
    if len(folded) < _SHORTEST or not folded.isalnum():
        return None
    stem = stem_words([folded], "en")[0]
    common = 0
    while common < min(len(folded), len(stem)) and folded[common] == stem[common]:
        common += 1
    # Stemmers disagree on the last letters (Porter takes "generously" to "gener",
    # Snowball to "generous"): three letters fewer than the shared part is safe,
    # ("news": "new" for Porter), and short shared parts keep three letters at most.
    keep = min(common, 3) if common <= _SHORTEST else max(_SHORTEST, common - 3)
    return folded[:keep] + "*" if keep >= 2 else None


def _leaf(node: Terms | Prefix | Regex) -> str | None:
    if isinstance(node, Regex) or not node.fields or not set(node.fields) <= _INDEXED:
        return None
    text = node.prefix if isinstance(node, Prefix) else node.words
    parts = [p for p in (_prefix(w) for w in words_of(text)) if p is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(" + " ".join(parts) + ")"


def candidate_query(node: Node) -> str | None:
    """A search every match of `node` satisfies, or None when none narrows."""
    if isinstance(node, Not):
        return None
    if isinstance(node, And):
        parts = [p for p in (candidate_query(c) for c in node.children) if p is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else "(" + " ".join(parts) + ")"
    if isinstance(node, Or):
        options = [candidate_query(c) for c in node.children]
        if any(p is None for p in options):
            return None
        return "(" + " OR ".join(p for p in options if p) + ")"
    return _leaf(node)
