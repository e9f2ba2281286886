"""Text normalisation shared by rules and articles.

Words are runs of letters and digits; everything else (spaces of any kind,
hyphens, line breaks, punctuation, underscores) separates them. Each word is
NFKC-normalised, case-folded, accent-folded and stemmed, so "Tactical\n
Missiles" and "tactical-missile" both become the stems (tactic, missil).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[^\W_]+")
_STEMMER = snowballstemmer.stemmer("english")


@dataclass(frozen=True, slots=True)
class Token:
    key: str  # normalised, stemmed form used for matching
    start: int  # offsets into the original text
    end: int


@lru_cache(maxsize=200_000)
def normalise_word(word: str) -> str:
    folded = unicodedata.normalize("NFKC", word).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


@lru_cache(maxsize=200_000)
def word_key(word: str) -> str:
    return _STEMMER.stemWord(normalise_word(word))


def tokens(text: str) -> list[Token]:
    return [Token(word_key(m.group()), m.start(), m.end()) for m in _WORD.finditer(text)]


def phrase_keys(phrase: str) -> tuple[str, ...]:
    return tuple(word_key(m.group()) for m in _WORD.finditer(phrase))
