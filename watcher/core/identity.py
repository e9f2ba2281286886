"""Which copies are the same story: canonical URLs and near-duplicate text. Pure.

A story reaches people through many feeds: the agency's own, newspapers that
reprint it, aggregators linking to one of them, a feed re-publishing an edit
under a new guid. Two signals bring the copies together:

- the canonical URL (courlan's strict normalisation: lower-case host, no
  default port, no fragment, no tracking parameters), and
- near-identical text: MinHash over word shingles, with LSH banding to find
  candidates, within a time window. Written here with numpy: the datasketch
  package pulls in scipy, which would double the daemon's memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from watcher.core.text import word_keys

NUM_PERM = 128
SHINGLE = 4
# Fewer shingles than this (a one-line summary) say too little to compare.
MIN_SHINGLES = 12


# Query parameters that say how a reader arrived, never which page: dropped. Every
# other parameter is kept, since many sites name the article in the query
# (?NewsID=1001, ?p=123, ?v=abc, ?story=...).
_TRACKING = frozenset({
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "igshid", "ttclid", "li_fat_id", "mc_cid", "mc_eid", "_ga", "_gl", "_hsenc", "_hsmi",
    "mkt_tok", "ocid", "cmpid", "icid", "ito", "smid", "sr_share", "soc_src", "soc_trk",
    "wt.mc_id", "wt_mc", "s_cid", "ref", "ref_src", "ref_url", "referrer", "spm",
    "rss", "fromrss", "from_rss", "rssfeed", "xtor",
    "__twitter_impression", "vero_id", "vero_conv", "rb_clickid", "guccounter", "guce_referrer",
    "guce_referrer_sig", "mbid", "sc_cid", "ns_campaign", "ns_mchannel", "ns_source",
    "ns_linkname", "ns_fee", "at_medium", "at_campaign", "at_custom1", "at_custom2",
})
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "piwik_", "hsa_", "oly_", "matomo_")


def _courlan() -> Any:
    """Imported on first use: a cycle that finds no new entry never needs it."""
    import courlan

    return courlan


def is_tracking_parameter(name: str) -> bool:
    key = name.lower()
    return key in _TRACKING or key.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str | None) -> str | None:
    """The form of a link that two feeds pointing at one page agree on: lower-case
    host, no default port, no fragment, parameters sorted, tracking ones dropped."""
    if not url:
        return None
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return url  # file: seeds and the like: kept as they are
    try:
        # courlan's strict mode would keep only the few parameters it knows,
        # folding ?NewsID=1001 and ?NewsID=1002 into one article.
        parts = urlsplit(_courlan().normalize_url(url, strict=False))
    except (ValueError, AttributeError):
        return url
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not is_tracking_parameter(k)]
    return str(urlunsplit(parts._replace(query=urlencode(sorted(kept)), fragment="")))


def trusted_canonical(page_url: str | None, canonical: str | None) -> str | None:
    """The page's <link rel="canonical">, when it stays on the page's own site.

    Page content is untrusted: a canonical pointing at another site could fold
    a story into one it is not part of and silence its alert.
    """
    if not page_url or not canonical:
        return None
    if urlsplit(canonical).scheme not in ("http", "https"):
        return None
    if urlsplit(page_url).scheme not in ("http", "https"):
        return None
    try:
        if _courlan().is_external(canonical, page_url, ignore_suffix=False):
            return None
    except (ValueError, AttributeError):
        return None
    return canonical_url(canonical)


def site_of(url: str | None, feed: str) -> str:
    """Which site an article is from: its link's registered domain (or host), else
    its feed (a local file)."""
    if url:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme.lower() in ("http", "https") and parts.hostname:
            try:
                domain = _courlan().extract_domain(url)
            except (ValueError, AttributeError):
                domain = None
            return (domain or parts.hostname).lower()
    return f"feed:{feed}"


# A run of this many words of its own makes a text more than a copy of another.
DISTINCT_RUN = 8


def _without_lines(text: str, drop: set[tuple[str, ...]]) -> list[str]:
    """The words of `text` without its lines whose words are one of `drop`'s."""
    words: list[str] = []
    for line in text.splitlines():
        keys = word_keys(line)
        if tuple(keys) not in drop:
            words += keys
    return words


def distinct_content(a: str, b: str, run: int = DISTINCT_RUN,
                     titles: Sequence[str] = ()) -> bool:
    """Whether the shorter text says something the longer does not: a stretch of at
    least `run` words none of whose 4-word shingles the longer has. Lines that are
    one of `titles` do not count (a page's text often starts with its headline,
    and a copy may be re-headlined).

    A site repeats its own boilerplate (an "About us" block, a disclaimer) under
    each of its different articles; their shingle sets can then overlap more than
    a trimmed copy's does. A true copy, trimmed or re-headlined, has no text of its
    own; a different article sharing only boilerplate has its own lead.
    """
    drop = {tuple(word_keys(t)) for t in titles if t.strip()}
    wa, wb = _without_lines(a, drop), _without_lines(b, drop)
    short, long_ = (wa, wb) if len(wa) <= len(wb) else (wb, wa)
    if len(short) < SHINGLE:
        return bool(short) and " ".join(short) not in " ".join(long_)
    known = {tuple(long_[i:i + SHINGLE]) for i in range(len(long_) - SHINGLE + 1)}
    covered = [False] * len(short)
    for i in range(len(short) - SHINGLE + 1):
        if tuple(short[i:i + SHINGLE]) in known:
            for j in range(i, i + SHINGLE):
                covered[j] = True
    longest = current = 0
    for c in covered:
        current = 0 if c else current + 1
        longest = max(longest, current)
    return longest >= run


# LSH: 32 bands of 4 rows find pairs above about (1/32)**(1/4) = 0.42 similarity.
BANDS, ROWS = 32, 4


# Signatures are stored and must compare across processes, restarts and numpy
# versions, so the hashing from here to signature() is fixed, its constants drawn
# from splitmix64 rather than numpy's generators. Changing any of it changes every
# signature: those stored by an older build stop matching until they leave the window.
_MASK64 = 2**64 - 1


def _splitmix64(seed: int, count: int) -> list[int]:
    out = []
    for _ in range(count):
        seed = (seed + 0x9E3779B97F4A7C15) & _MASK64
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


_CONSTANTS = _splitmix64(20240515, NUM_PERM + SHINGLE + 2)
# Words are hashed all at once from the bytes of the joined text, as a polynomial
# in an odd base modulo 2**64: the base's powers, then its inverse's, undo the
# word's position, so a word hashes the same wherever it stands.
_BASE = _CONSTANTS[0] | 1
_BASE_INV = pow(_BASE, -1, 2**64)
# A shingle is a weighted sum of its words' hashes, mixed (an xor-shift and an odd
# multiplier) so that its top 32 bits are well spread.
_WEIGHTS = [np.uint64(k | 1) for k in _CONSTANTS[1:1 + SHINGLE]]
_MIX = np.uint64(_CONSTANTS[1 + SHINGLE] | 1)
# MinHash with 128 odd multipliers modulo 2**32 (x -> a*x is a permutation): on
# well-mixed inputs its estimates are as good as multiply-shift in 64 bits, and
# cheaper. The shingle hashes are made odd so that none is a fixed
# point (0) that would be the minimum under every multiplier.
_A = np.array([k & 0xFFFFFFFF | 1 for k in _CONSTANTS[2 + SHINGLE:]], dtype=np.uint32)[:, None]
_SPACE = ord(" ")
_U64_32, _U64_29 = np.uint64(32), np.uint64(29)


def _power_table(base: int, size: int) -> np.ndarray:
    table = np.ones(1, dtype=np.uint64)
    while len(table) < size:  # doubling; array products wrap at 2**64 silently
        table = np.concatenate((table, table * np.uint64(pow(base, len(table), 2**64))))
    return table[:size]


_powers = (_power_table(_BASE, 1 << 14), _power_table(_BASE_INV, 1 << 14))


def _powers_for(size: int) -> tuple[np.ndarray, np.ndarray]:
    global _powers
    powers = _powers  # replaced whole, never changed in place: safe to share
    if len(powers[0]) < size:
        size = 1 << (size - 1).bit_length()
        powers = _powers = (_power_table(_BASE, size), _power_table(_BASE_INV, size))
    return powers


def _word_hashes(words: list[str]) -> np.ndarray:
    """64-bit hashes of the words, position by position."""
    data = np.frombuffer((" ".join(words) + " ").encode(), dtype=np.uint8)
    ends = np.flatnonzero(data == _SPACE)
    if len(ends) != len(words):  # a word with a space in it: word_keys makes none
        return _word_hashes([w.replace(" ", "\0") for w in words])
    powers, inverses = _powers_for(len(data))
    sums = np.cumsum(data * powers[:len(data)])[ends]
    sums[1:] -= sums[:-1]  # each word's bytes with its trailing space
    sums *= inverses[ends]
    return sums


def _mix(out: np.ndarray, columns: Sequence[np.ndarray], weights: Sequence[np.uint64],
         mix: np.uint64) -> np.ndarray:
    """`out` plus the weighted sum of the columns (wrapping at 2**64), then an
    xor-shift and an odd multiplier so that the top bits are well spread. In place."""
    for column, weight in zip(columns, weights, strict=True):
        out += column * weight
    out ^= out >> _U64_29
    out *= mix
    return out


def signature(text: str) -> np.ndarray | None:
    """MinHash values over word shingles of the normalised text, or None if too short."""
    words = word_keys(text)
    count = len(words) - SHINGLE + 1
    if count < MIN_SHINGLES:
        return None
    hashes = _word_hashes(words)
    mixed = _mix(np.zeros(count, dtype=np.uint64),
                 [hashes[i:i + count] for i in range(SHINGLE)], _WEIGHTS, _MIX)
    shingles = (mixed >> _U64_32).astype(np.uint32)
    shingles |= np.uint32(1)
    shingles.sort()
    distinct = np.empty(count, dtype=bool)
    distinct[0] = True
    np.not_equal(shingles[1:], shingles[:-1], out=distinct[1:])
    shingles = shingles[distinct]
    if len(shingles) < MIN_SHINGLES:
        return None
    signature: np.ndarray = (_A * shingles).min(axis=1).astype(np.uint64)
    return signature


def to_bytes(sig: np.ndarray) -> bytes:
    return sig.astype(np.uint64).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint64).copy()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    return float(np.count_nonzero(a == b)) / len(a)


# Band keys: the 4 values of a band mixed into one integer, with the band's
# number, so equal bands give equal keys and different ones almost never do (a
# rare collision only adds a candidate, which similarity() then turns away).
_BAND_CONSTANTS = _splitmix64(20251123, ROWS + 2)
_BAND_WEIGHTS = [np.uint64(k | 1) for k in _BAND_CONSTANTS[:ROWS]]
_BAND_SALT = np.arange(BANDS, dtype=np.uint64) * np.uint64(_BAND_CONSTANTS[ROWS] | 1)
_BAND_MIX = np.uint64(_BAND_CONSTANTS[ROWS + 1] | 1)
_U64_1 = np.uint64(1)


def band_keys(sig: np.ndarray) -> list[int]:
    """One key per LSH band, 63 bits (a signed SQLite INTEGER holds it)."""
    rows = sig.astype(np.uint64).reshape(BANDS, ROWS)
    mixed = _mix(_BAND_SALT.copy(), [rows[:, i] for i in range(ROWS)], _BAND_WEIGHTS,
                 _BAND_MIX)
    keys: list[int] = (mixed >> _U64_1).astype(np.int64).tolist()
    return keys
