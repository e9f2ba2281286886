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

# Letters and digits, plus what may sit inside a word without splitting it:
# combining marks (decomposed accents), soft hyphens and zero-width joiners.
_WORD = re.compile(r"(?:[^\W_]|[\u0300-\u036f\u00ad\u200b-\u200d\u2060])+")
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060"))
_STEMMER = snowballstemmer.stemmer("english")


@dataclass(frozen=True, slots=True)
class Token:
    key: str  # normalised, stemmed form used for matching
    start: int  # offsets into the original text
    end: int


@lru_cache(maxsize=200_000)
def normalise_word(word: str) -> str:
    folded = unicodedata.normalize("NFKC", word.translate(_INVISIBLE)).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped)


@lru_cache(maxsize=200_000)
def word_key(word: str) -> str:
    return _STEMMER.stemWord(normalise_word(word))


def tokens(text: str) -> list[Token]:
    out = []
    for m in _WORD.finditer(text):
        key = word_key(m.group())
        if key:  # a run of only invisible characters is no word
            out.append(Token(key, m.start(), m.end()))
    return out


def phrase_keys(phrase: str) -> tuple[str, ...]:
    return tuple(t.key for t in tokens(phrase))
