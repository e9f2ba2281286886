"""Which copies are the same story: canonical URLs and near-duplicate text. Pure.

A story reaches people through many feeds: the agency's own, newspapers that
reprint it, aggregators linking to one of them, a feed re-publishing an edit
under a new guid. Two signals bring the copies together:

- the canonical URL (courlan's strict normalisation: lower-case host, no
  default port, no fragment, no tracking parameters), and
- near-identical text: MinHash over word shingles with LSH to find
  candidates, within a time window.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import courlan
import numpy as np
from datasketch import MinHash, MinHashLSH

from watcher.rules.text import tokens

NUM_PERM = 128
# Stored signatures are only comparable under one hashing scheme: fixed, not defaulted.
SCHEME = "affine32"
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


def signature(text: str) -> np.ndarray | None:
    """MinHash hash values over word shingles of the normalised text, or None if too short."""
    words = [t.key for t in tokens(text)]
    shingles = {" ".join(words[i:i + SHINGLE]).encode()
                for i in range(max(len(words) - SHINGLE + 1, 0))}
    if len(shingles) < MIN_SHINGLES:
        return None
    mh = MinHash(num_perm=NUM_PERM, scheme=SCHEME)
    mh.update_batch(list(shingles))
    return mh.hashvalues.copy()


def to_bytes(sig: np.ndarray) -> bytes:
    return sig.astype(np.uint64).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint64).copy()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of the two shingle sets."""
    return float(np.count_nonzero(a == b)) / len(a)


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
        # LSH finds candidates a little below the threshold; the exact estimate decides.
        self._lsh = MinHashLSH(threshold=max(threshold - 0.1, 0.05), num_perm=NUM_PERM)
        self._entries: dict[int, tuple[int, np.ndarray, datetime]] = {}
        self._order: deque[tuple[datetime, int]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, article_id: int, story_id: int, sig: np.ndarray, when: datetime) -> None:
        if article_id in self._entries:
            return
        self._lsh.insert(str(article_id), MinHash(num_perm=NUM_PERM, hashvalues=sig, scheme=SCHEME))
        self._entries[article_id] = (story_id, sig, when)
        self._order.append((when, article_id))

    def expire(self, now: datetime) -> None:
        cutoff = now - self.window
        while self._order and self._order[0][0] < cutoff:
            _, article_id = self._order.popleft()
            if self._entries.pop(article_id, None) is not None:
                self._lsh.remove(str(article_id))

    def find(self, sig: np.ndarray, now: datetime) -> StoryHit | None:
        """The most similar recent article at or above the threshold, if any."""
        self.expire(now)
        best: StoryHit | None = None
        for key in self._lsh.query(MinHash(num_perm=NUM_PERM, hashvalues=sig, scheme=SCHEME)):
            article_id = int(key)
            story_id, other, _ = self._entries[article_id]
            sim = similarity(sig, other)
            if sim >= self.threshold and (best is None or sim > best.similarity):
                best = StoryHit(story_id, article_id, sim)
        return best
