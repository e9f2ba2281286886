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

import zlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import courlan
import numpy as np

from watcher.rules.text import word_keys

NUM_PERM = 128
SHINGLE = 4
# Fewer shingles than this (a one-line summary) say too little to compare.
MIN_SHINGLES = 12


def canonical_url(url: str | None) -> str | None:
    """The form of a link that two feeds pointing at one page agree on."""
    if not url:
        return None
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        return url  # file: seeds and the like: kept as they are
    try:
        return courlan.normalize_url(url, strict=True)
    except (ValueError, AttributeError):
        return url


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
        if courlan.is_external(canonical, page_url, ignore_suffix=False):
            return None
    except (ValueError, AttributeError):
        return None
    return canonical_url(canonical)


# MinHash by multiply-shift hashing of 32-bit shingle hashes: h(x) = (a*x + b) >> 32
# in 64-bit arithmetic, a universal family that needs no division. The seed is
# fixed: signatures are stored, and must compare across processes and restarts.
_rng = np.random.default_rng(20240515)
_A = _rng.integers(1, 2**63, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)
_B = _rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)
_SHIFT = np.uint64(32)
# LSH: 32 bands of 4 rows find pairs above about (1/32)**(1/4) = 0.42 similarity.
BANDS, ROWS = 32, 4


def signature(text: str) -> np.ndarray | None:
    """MinHash values over word shingles of the normalised text, or None if too short."""
    words = word_keys(text)
    shingles = {" ".join(words[i:i + SHINGLE])
                for i in range(max(len(words) - SHINGLE + 1, 0))}
    if len(shingles) < MIN_SHINGLES:
        return None
    hashes = np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64,
                         count=len(shingles))
    with np.errstate(over="ignore"):  # wrapping at 2**64 is the point
        return ((_A[:, None] * hashes[None, :] + _B[:, None]) >> _SHIFT).min(axis=1)


def to_bytes(sig: np.ndarray) -> bytes:
    return sig.astype(np.uint64).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint64).copy()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    return float(np.count_nonzero(a == b)) / len(a)


def _bands(sig: np.ndarray) -> list[tuple[int, bytes]]:
    return [(i, sig[i * ROWS:(i + 1) * ROWS].tobytes()) for i in range(BANDS)]


@dataclass(frozen=True)
class StoryHit:
    story_id: int
    article_id: int
    similarity: float


class StoryIndex:
    """Recent articles' signatures, to find the story a new article belongs to."""

    def __init__(self, threshold: float = 0.5, window: timedelta = timedelta(days=3)) -> None:
        self.threshold = threshold
        self.window = window
        self._buckets: dict[tuple[int, bytes], set[int]] = {}
        self._entries: dict[int, tuple[int, np.ndarray, datetime]] = {}
        self._order: deque[tuple[datetime, int]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, article_id: int, story_id: int, sig: np.ndarray, when: datetime) -> None:
        if article_id in self._entries:
            return
        for band in _bands(sig):
            self._buckets.setdefault(band, set()).add(article_id)
        self._entries[article_id] = (story_id, sig, when)
        self._order.append((when, article_id))

    def expire(self, now: datetime) -> None:
        cutoff = now - self.window
        while self._order and self._order[0][0] < cutoff:
            _, article_id = self._order.popleft()
            entry = self._entries.pop(article_id, None)
            if entry is None:
                continue
            for band in _bands(entry[1]):
                members = self._buckets.get(band)
                if members is not None:
                    members.discard(article_id)
                    if not members:
                        del self._buckets[band]

    def find(self, sig: np.ndarray, now: datetime) -> StoryHit | None:
        """The most similar recent article at or above the threshold, if any."""
        self.expire(now)
        candidates: set[int] = set()
        for band in _bands(sig):
            candidates |= self._buckets.get(band, set())
        best: StoryHit | None = None
        for article_id in candidates:
            story_id, other, _ = self._entries[article_id]
            sim = similarity(sig, other)
            if sim >= self.threshold and (best is None or sim > best.similarity):
                best = StoryHit(story_id, article_id, sim)
        return best
