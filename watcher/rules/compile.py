"""A whole rule set compiled into one matcher.

Every literal of every rule (each word and phrase, each prefix) becomes a key in
an Aho-Corasick automaton over normalised words: the text " tactic missil " for
the phrase "tactical missile". An article's field, normalised the same way and
joined with spaces, is scanned once per automaton, so the cost grows with the
article's length and the number of hits, not with the number of rules. Regular
expressions run together as one RE2 set over the field's words; feed and tag
terms are looked up in a dictionary. Only the rules with at least one hit are
then evaluated (see evaluate.py).

Stemmed keys depend on the article's language, so the automata are built per
language on first use and kept.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import ahocorasick

from watcher.core.models import Article
from watcher.core.text import (
    WordBounds,
    fold,
    fold_words,
    folded_words,
    language_code,
    stem_words,
    word_bounds,
    words_of,
)
from watcher.rules.query import KEYWORD_FIELDS, Leaf, Prefix, QueryError, Regex
from watcher.rules.regex import RegexError, regex_set, word_regex

# A stream is one way of normalising words: (stemmed?, accents folded?).
Stream = tuple[bool, bool]
# A hit of a literal: (field, first word, last word); keyword hits use -1, -1.
RawHit = tuple[str, int, int]


@dataclass(frozen=True)
class Literal:
    """What an automaton, the regex set or the keyword index looks for."""

    kind: str  # "terms" | "prefix" | "regex"
    stream: Stream
    raw: str  # the words, prefix or pattern as written
    keyword: bool = False  # in feed: / tag: (whole values) rather than text


def literals_of(leaf: Leaf, stem: bool, accents: bool) -> list[Literal]:
    """The literals a leaf needs: one, or one per word for a proximity phrase."""
    keyword = bool(leaf.fields) and all(f in KEYWORD_FIELDS for f in leaf.fields)
    if isinstance(leaf, Regex):
        return [Literal("regex", (False, accents), leaf.pattern, keyword)]
    if isinstance(leaf, Prefix):
        return [Literal("prefix", (False, accents), leaf.prefix, keyword)]
    if keyword:
        return [Literal("terms", (False, accents), leaf.words, True)]
    if leaf.slop:
        return [Literal("terms", (stem, accents), w) for w in words_of(leaf.words)]
    return [Literal("terms", (stem, accents), leaf.words)]


def leaf_problem(leaf: Leaf) -> QueryError | None:
    """Why a leaf cannot be matched, or None."""
    if isinstance(leaf, Regex):
        try:
            word_regex(leaf.pattern)
        except RegexError as exc:
            return QueryError(str(exc), leaf.pos)
        return None
    if any(f in KEYWORD_FIELDS for f in leaf.fields):
        if len(leaf.fields) > 1:
            return QueryError("feed: and tag: cannot be mixed with text fields", leaf.pos)
        return None
    text = leaf.prefix if isinstance(leaf, Prefix) else leaf.words
    words = words_of(text)
    if not words:
        return QueryError(f"{leaf.text} has no words to match", leaf.pos)
    if isinstance(leaf, Prefix) and (len(words) > 1 or not text.endswith(words[0])):
        return QueryError(f"{leaf.text}: a trailing * applies to one word", leaf.pos)
    return None


def _key(lit: Literal, language: str) -> str | None:
    """The automaton key of a text literal in one language."""
    stem, accents = lit.stream
    words = fold_words(words_of(lit.raw), accents)
    if not words:
        return None
    if stem:
        words = stem_words(words, language)
    if lit.kind == "prefix":
        return " " + words[0]
    return " " + " ".join(words) + " "


class _Offsets(dict[str, WordBounds]):
    """Word offsets per field, worked out only for the fields that had hits."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__()
        self._fields = fields

    def __missing__(self, name: str) -> WordBounds:
        ends = word_bounds(self._fields.get(name, ""))
        self[name] = ends
        return ends


class _WordAt:
    """The index of the word at a character position of a line of words, each
    preceded by one separator (" w0 w1 ... ").

    Articles have few hits, so counting separators before each hit (a C-level
    scan) beats building the running word ends up front; many hits switch to those.
    """

    def __init__(self, line: str, sep: str) -> None:
        self.line, self.sep = line, sep
        self._calls = 0
        self._ends: list[int] | None = None

    def __call__(self, pos: int) -> int:
        if self._ends is None:
            self._calls += 1
            if self._calls <= 32:
                return self.line.count(self.sep, 0, pos) - 1
            import numpy as np  # only for long lines: loading rules need not load it

            codes = np.frombuffer(self.line.encode("utf-32-le"), dtype=np.uint32)
            self._ends = np.flatnonzero(codes == ord(self.sep)).tolist()
        return bisect_left(self._ends, pos) - 1


class LiteralIndex:
    """Every literal of a rule set, each with an id; finds them all in an article."""

    def __init__(self) -> None:
        self.literals: list[Literal] = []
        self._ids: dict[Literal, int] = {}
        self._by_language: dict[str, dict[Stream, Any]] = {}
        self._regex: dict[bool, tuple[Any, list[int]]] = {}  # accents -> (set, ids)
        self._regex_one: dict[int, Any] = {}
        self._kw_exact: dict[tuple[str, bool, str], list[int]] = defaultdict(list)
        self._kw_other: list[int] = []
        self.fields_streams: dict[str, set[Stream]] = defaultdict(set)

    def add(self, lit: Literal, fields: Iterable[str]) -> int:
        lid = self._ids.get(lit)
        if lid is None:
            lid = self._ids[lit] = len(self.literals)
            self.literals.append(lit)
            if lit.keyword:
                if lit.kind == "terms":
                    accents = lit.stream[1]
                    for f in fields:
                        self._kw_exact[(f, accents, fold(lit.raw.strip(), accents))].append(lid)
                else:
                    self._kw_other.append(lid)
                    if lit.kind == "regex":
                        self._regex_one[lid] = word_regex(lit.raw)
        if not lit.keyword:
            for f in fields:
                self.fields_streams[f].add(lit.stream)
        return lid

    def freeze(self) -> None:
        by_accents: dict[bool, list[int]] = defaultdict(list)
        for lid, lit in enumerate(self.literals):
            if lit.kind == "regex" and not lit.keyword:
                by_accents[lit.stream[1]].append(lid)
                self._regex_one[lid] = word_regex(lit.raw)
        for accents, ids in by_accents.items():
            self._regex[accents] = (regex_set([self.literals[i].raw for i in ids]), ids)

    def automata(self, language: str) -> dict[Stream, Any]:
        """Aho-Corasick automata for one language, built on first use."""
        found = self._by_language.get(language)
        if found is not None:
            return found
        keys: dict[Stream, dict[str, list[tuple[int, int, bool]]]] = defaultdict(
            lambda: defaultdict(list))
        for lid, lit in enumerate(self.literals):
            if lit.keyword or lit.kind == "regex":
                continue
            key = _key(lit, language)
            if key is None:
                continue
            n = key.count(" ") - 1 if lit.kind == "terms" else 1
            keys[lit.stream][key].append((lid, n, lit.kind == "prefix"))
        built: dict[Stream, Any] = {}
        for stream, entries in keys.items():
            auto = ahocorasick.Automaton()
            for key, values in entries.items():
                auto.add_word(key, tuple(values))
            auto.make_automaton()
            built[stream] = auto
        self._by_language[language] = built
        return built

    def find(self, article: Article, fields: dict[str, str]) -> tuple[
            dict[int, list[RawHit]], dict[str, WordBounds]]:
        """Every literal hit in the article, and each scanned field's word offsets."""
        language = language_code(article.language)
        automata = self.automata(language)
        hits: dict[int, list[RawHit]] = defaultdict(list)
        offsets = _Offsets(fields)
        for name, streams in self.fields_streams.items():
            text = fields.get(name, "")
            if not text:
                continue
            folded: dict[bool, list[str]] = {}
            for stem, accents in streams:
                base = folded.get(accents)
                if base is None:
                    base = folded[accents] = folded_words(text, accents)
                if not base:
                    continue
                keys = stem_words(base, language) if stem else base
                line = " " + " ".join(keys) + " "
                auto = automata.get((stem, accents))
                if auto is not None:
                    word_at = _WordAt(line, " ")
                    for end, values in auto.iter(line):
                        last = word_at(end)
                        for lid, n, _ in values:
                            hits[lid].append((name, last - n + 1, last))
                if not stem and accents in self._regex:
                    self._find_regex(name, line, accents, hits)
        if self._kw_exact or self._kw_other:
            self._find_keywords(article, hits)
        return hits, offsets

    def _find_regex(self, name: str, line: str, accents: bool,
                    hits: dict[int, list[RawHit]]) -> None:
        regex_set_, ids = self._regex[accents]
        text = line.replace(" ", "\n")
        matched = regex_set_.Match(text)
        if not matched:
            return
        word_at = _WordAt(text, "\n")
        for i in matched:
            lid = ids[i]
            for m in self._regex_one[lid].finditer(text):
                start, end = m.span()
                if start == end or "\n" in text[start:end]:
                    continue
                first = word_at(start)
                hits[lid].append((name, first, first))

    def _find_keywords(self, article: Article, hits: dict[int, list[RawHit]]) -> None:
        values = [("feed", article.feed), *(("tag", t) for t in article.tags)]
        for f, value in values:
            for accents in (True, False):
                for lid in self._kw_exact.get((f, accents, fold(value.strip(), accents)), ()):
                    hits[lid].append((f, -1, -1))
        for lid in self._kw_other:
            lit = self.literals[lid]
            for f, value in values:
                v = fold(value.strip(), lit.stream[1])
                ok = (self._regex_one[lid].search(v) is not None if lit.kind == "regex"
                      else v.startswith(fold(lit.raw, lit.stream[1])))
                if ok:
                    hits[lid].append((f, -1, -1))

