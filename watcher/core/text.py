"""Text normalisation shared by rules and articles.

Words are runs of letters and digits (with the combining marks, soft hyphens and
zero-width joiners that may sit inside a word); everything else separates them:
spaces of any kind, hyphens, line breaks, punctuation, quotes, underscores, and
inline markup left in the text (``tactical<b>missile</b>`` is two words). Each
word is NFKC-normalised and case-folded; accents are folded unless asked not to
be; then, when stemming, reduced to its Snowball stem for the text's language.

The hot path works on whole strings (one regex pass, one normalisation of all
words joined, one call into the C stemmer), so the cost per word stays small.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Sequence
from itertools import accumulate, chain, compress, repeat
from operator import is_
from typing import TYPE_CHECKING, TypeAlias

import Stemmer

import watcher.core.marks

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_INVISIBLE_CHARS = "\u00ad\u200b\u200c\u200d\u2060\ufeff"
_INVISIBLE = dict.fromkeys(map(ord, _INVISIBLE_CHARS))


def _bmp_marks() -> tuple[str, dict[int, None]]:
    """Combining marks of the Basic Multilingual Plane: a regex class of all of them,
    and the table that strips those NFKD splits off a letter (combining class > 0)."""
    marks, combining = watcher.core.marks.marks()
    cls = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in marks)
    return cls, {cp: None for a, b in combining for cp in range(a, b + 1)}


_MARKS, _COMBINING = _bmp_marks()
_WORD_SRC = rf"[^\W_](?:[^\W_]|[{_MARKS}{_INVISIBLE_CHARS}])*"
_WORD = re.compile(_WORD_SRC)
# Before each word, the gap: separators and any inline markup tags.
_GAP_AND_WORD = re.compile(rf"((?:[^\w<]+|_+|<[A-Za-z/!][^<>]{{0,300}}>|<)*)({_WORD_SRC})")
_PLAIN_WORD = re.compile(r"([^\W_]+)")
_ASCII_WORD = re.compile(r"([A-Za-z0-9]+)")
_SLOW_PATH = re.compile(f"[<{_MARKS}{_INVISIBLE_CHARS}]")
_SEP = "\x1f"

# ISO 639-1 codes (what trafilatura reports) -> Snowball algorithm names.
LANGUAGES = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech",
    "da": "danish", "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian",
    "fi": "finnish", "fr": "french", "de": "german", "el": "greek", "hi": "hindi",
    "hu": "hungarian", "id": "indonesian", "ga": "irish", "it": "italian",
    "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
    "nn": "norwegian", "fa": "persian", "pl": "polish", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sr": "serbian", "st": "sesotho", "es": "spanish",
    "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}
DEFAULT_LANGUAGE = "en"


def language_code(language: str | None) -> str:
    """The two-letter code used to pick a stemmer: 'en-GB' -> 'en'; unknown -> 'en'."""
    if not language:
        return DEFAULT_LANGUAGE
    return language.replace("_", "-").split("-")[0].strip().lower() or DEFAULT_LANGUAGE


_PER_THREAD = threading.local()  # a PyStemmer object must not be shared between threads


def _stemmer(code: str) -> Stemmer.Stemmer | None:
    cache: dict[str, Stemmer.Stemmer | None] | None = getattr(_PER_THREAD, "stemmers", None)
    if cache is None:
        cache = _PER_THREAD.stemmers = {}
    if code not in cache:
        name = LANGUAGES.get(code)
        cache[code] = Stemmer.Stemmer(name, 100_000) if name else None
    return cache[code]


def fold(text: str, accents: bool = True) -> str:
    """NFKC, case folding and (unless `accents` is False) accent folding."""
    out = unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).casefold()
    if accents and not out.isascii():
        out = unicodedata.normalize("NFC", unicodedata.normalize("NFKD", out)
                                    .translate(_COMBINING))
    return out


def fold_words(words: list[str], accents: bool = True) -> list[str]:
    """Fold many words in one pass; the result is aligned with `words`."""
    if not words:
        return []
    joined = _SEP.join(words)
    return fold(joined, accents).replace(" ", "").split(_SEP)


_STEMS: dict[str, dict[str, str]] = {}
_STEM_CACHE_MAX = 500_000


def stem_words(words: list[str], language: str | None) -> list[str]:
    """Snowball stems for the language ('en' when unknown); unchanged if none exists.

    News text repeats its words, so stems are remembered per language: a dict
    lookup per word costs far less than a call into the stemmer.
    """
    code = language_code(language)
    stemmer = _stemmer(code)
    if stemmer is None:
        return words
    if not words:
        return []
    cache = _STEMS.setdefault(code, {})
    stems = list(map(cache.get, words))  # one C-level pass
    if None not in stems:
        return stems  # type: ignore[return-value]
    # Words not seen before (names, mostly): only those go to the stemmer.
    unseen = list(compress(range(len(words)), map(is_, stems, repeat(None))))
    new = list({words[i] for i in unseen})
    if len(cache) > _STEM_CACHE_MAX:
        cache.clear()
    cache.update(zip(new, stemmer.stemWords(new), strict=True))
    for i in unseen:
        stems[i] = cache[words[i]]
    return stems  # type: ignore[return-value]


def has_stemmer(language: str | None) -> bool:
    return _stemmer(language_code(language)) is not None


def split_words(text: str) -> tuple[list[str], list[int]]:
    """The words of `text` and the running ends of gap, word, gap, word... lengths.

    Word i spans text[ends[2i]:ends[2i+1]]; computed with C-level helpers only.
    Text without markup, marks or invisible characters (most of it) takes a
    faster path that splits on plain runs of letters and digits.
    """
    if text.isascii() and "<" not in text:
        parts = _ASCII_WORD.split(text)  # the same words, found faster
        return parts[1::2], list(accumulate(map(len, parts)))
    if _SLOW_PATH.search(text) is None:
        parts = _PLAIN_WORD.split(text)
        return parts[1::2], list(accumulate(map(len, parts)))
    pairs = _GAP_AND_WORD.findall(text)
    words = [w for _, w in pairs]
    return words, list(accumulate(map(len, chain.from_iterable(pairs))))


# ASCII text (most news) takes a shortcut: one C-level byte translation maps
# letters to lower case and everything else to a space, and str.split does the
# rest: the same words split_words finds, already folded (NFKC, case folding and
# accent folding change nothing else in ASCII).
_ASCII_FOLD = bytes(c + 32 if 65 <= c <= 90 else c if (48 <= c <= 57 or 97 <= c <= 122)
                    else 32 for c in range(256))


def folded_words(text: str, accents: bool = True) -> list[str]:
    """The folded words of `text`, without offsets (see split_words for those)."""
    if text.isascii() and "<" not in text:
        return text.encode("ascii").translate(_ASCII_FOLD).decode("ascii").split()
    return fold_words(split_words(text)[0], accents)


# word_bounds' answer: a list, or for ASCII text a numpy array of the same layout
# (a string: numpy is imported only where word_bounds runs)
WordBounds: TypeAlias = "Sequence[int] | npt.NDArray[np.intp]"


def word_bounds(text: str) -> WordBounds:
    """Start and end offsets of every word, interleaved: word i spans
    text[b[2i]:b[2i+1]] (the same layout as split_words' running ends).

    ASCII text gets a numpy array: only a few entries are ever read (those of
    the hits), so converting all of them to a list would cost more than finding them.
    """
    if not (text.isascii() and "<" not in text):
        return split_words(text)[1]
    # Padded with a space each side, every change between word and non-word
    # bytes is a word's start or end, in the text's own offsets.
    import numpy as np  # here: commands that only load rules need not import numpy

    padded = b" " + text.encode("ascii").translate(_ASCII_FOLD) + b" "
    is_word = np.frombuffer(padded, np.uint8) != 32
    return np.flatnonzero(is_word[1:] != is_word[:-1])


def words_of(text: str) -> list[str]:
    return split_words(text)[0]


def word_keys(text: str, language: str | None = None, stem: bool = True,
              accents: bool = True) -> list[str]:
    """The keys of `text`'s words (folded, stemmed), without offsets."""
    keys = folded_words(text, accents)
    return stem_words(keys, language) if stem else keys
