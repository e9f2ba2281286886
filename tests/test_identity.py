"""Canonical URLs and near-duplicate detection, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.stories import OTHER, WIRE
from watcher.core.decide import StoryHit, place_in_story
from watcher.core.identity import (
    band_keys,
    canonical_url,
    signature,
    similarity,
    to_bytes,
    trusted_canonical,
)
from watcher.core.intents import NewArticle
from watcher.core.models import Article
from watcher.store.sqlite import SqliteStore as Store

NOW = datetime(2024, 5, 15, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTPS://WWW.Example.COM:443/a/b?utm_source=x&id=3&fbclid=abc#frag",
     "https://www.example.com/a/b?id=3"),
    ("http://example.com:80/x?gclid=1", "http://example.com/x"),
    ("https://example.com/story?utm_medium=rss&utm_campaign=feed", "https://example.com/story"),
    ("https://example.com/story?page=2", "https://example.com/story?page=2"),
    ("https://example.com:8443/story", "https://example.com:8443/story"),
    ("file:///srv/seeds/a.html", "file:///srv/seeds/a.html"),
    (None, None),
])
def test_canonical_url(url: str | None, expected: str | None) -> None:
    assert canonical_url(url) == expected


# Copies of one page that must fold into one article: (link, link).
SAME_PAGE = [
    ("https://news.example.com/news.asp?NewsID=1001",
     "https://NEWS.example.com/news.asp?NewsID=1001&utm_source=rss&utm_medium=feed"),
    ("https://www.example.com/world/story-1", "https://www.example.com:443/world/story-1#comments"),
    ("https://example.com/a?id=3&page=2", "https://example.com/a?page=2&id=3&fbclid=XyZ"),
    ("https://blog.example.org/?p=123", "https://blog.example.org/?p=123&mc_cid=1&mc_eid=2"),
    ("https://video.example.com/watch?v=abc", "https://video.example.com/watch?v=abc&gclid=9"),
    ("https://example.com/s", "https://example.com/s?ref=rss&ocid=msn&xtor=RSS-1"),
    ("https://example.com/s", "https://example.com/s?at_medium=x&at_campaign=y&_ga=2.1"),
    ("https://example.com/s", "https://example.com/s?pk_campaign=a&mtm_source=b&igshid=c"),
    ("http://example.com/x", "http://example.com:80/x?msclkid=1&yclid=2"),
    ("https://example.com/story?id=7", "https://example.com/story?id=7&__twitter_impression=true"),
]
# Different articles that must stay apart: (link, link).
DIFFERENT_PAGES = [
    ("https://news.example.com/news.asp?NewsID=1001",
     "https://news.example.com/news.asp?NewsID=1002"),
    ("https://example.com/article.php?id=1", "https://example.com/article.php?id=2"),
    ("https://example.com/index.php?story=abc", "https://example.com/index.php?story=abd"),
    ("https://example.com/show?sid=5", "https://example.com/show?sid=6"),
    ("https://example.com/node?nid=10", "https://example.com/node?nid=11"),
    ("https://blog.example.org/?p=123", "https://blog.example.org/?p=124"),
    ("https://video.example.com/watch?v=abc", "https://video.example.com/watch?v=abd"),
    ("https://example.com/read?article=9", "https://example.com/read?article=10"),
    ("https://example.com/a?page=1", "https://example.com/a?page=2"),
    ("https://example.com/news", "https://example.com/news?id=1"),
    ("https://example.com/x", "https://example.org/x"),
    ("https://example.com/x", "http://example.com:8080/x"),
]


@pytest.mark.parametrize(("a", "b"), SAME_PAGE)
def test_copies_of_one_page_have_one_canonical_url(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(("a", "b"), DIFFERENT_PAGES)
def test_different_articles_keep_different_canonical_urls(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


@pytest.mark.parametrize(("page", "canonical", "expected"), [
    ("https://news.example.com/a?utm_source=x", "https://news.example.com/a",
     "https://news.example.com/a"),
    ("https://www.example.com/a", "https://example.com/story/a", "https://example.com/story/a"),
    ("https://evil.example.net/a", "https://news.example.com/a", None),  # another site
    ("https://news.example.com/a", "javascript:alert(1)", None),
    ("https://news.example.com/a", None, None),
])
def test_trusted_canonical(page: str, canonical: str | None, expected: str | None) -> None:
    assert trusted_canonical(page, canonical) == expected


def text(paras: list[str]) -> str:
    return "\n\n".join(paras)


@pytest.mark.parametrize(("a", "b", "same"), [
    (text(WIRE), text(WIRE), True),
    (text(WIRE), text(WIRE[:3] + WIRE[4:]), True),  # a paragraph cut
    (text(WIRE), text(WIRE[:-2]), True),  # the last two paragraphs cut
    (text(WIRE), "Updated: " + text(WIRE).replace("Wednesday", "on Wednesday"), True),
    (text(WIRE), text(WIRE) + "\n\nRead more: subscribe to our newsletter today for daily "
     "updates on world news and analysis from our correspondents.", True),
    (text(WIRE), text(OTHER), False),  # same event, different story
    (text(WIRE[:3]), text(WIRE[3:]), False),
])
def test_near_duplicates_at_default_threshold(a: str, b: str, same: bool) -> None:
    sa, sb = signature(a), signature(b)
    assert sa is not None and sb is not None
    assert (similarity(sa, sb) >= 0.5) is same


def test_short_text_has_no_signature() -> None:
    assert signature("Kim inspects tactical missile system") is None


def test_story_index_finds_the_story_within_the_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "w.db")
    window = timedelta(days=3)

    def find(sig: np.ndarray, now: datetime) -> StoryHit | None:
        keys = band_keys(sig)
        return place_in_story(sig, store.story_candidates(keys, now - window), 0.5)

    full = signature(text(WIRE))
    other = signature(text(OTHER))
    cut = signature(text(WIRE[1:]))
    assert full is not None and other is not None and cut is not None
    ids = []
    for entry, sig in (("wire", full), ("other", other)):
        aid = store.add_article(NewArticle(Article(
            feed="f", entry_id=entry, url=None, title=entry, summary="", body="",
            text_source="page", published=None, fetched_at=NOW, signature=to_bytes(sig)),
            story_keys=tuple(band_keys(sig))))
        assert aid is not None
        ids.append(aid)
    hit = find(cut, NOW + timedelta(hours=5))
    assert hit is not None and hit.article_id == ids[0] and hit.story.id == ids[0]
    assert hit.story.feed == "f" and hit.story.entry_id == "wire"
    assert hit.similarity >= 0.5
    # After the window the old copies no longer count.
    assert find(cut, NOW + timedelta(days=4)) is None
    # Removing an article takes its keys with it.
    store.db.execute("DELETE FROM articles WHERE id = ?", [ids[0]])
    assert store.db.execute("SELECT count(*) FROM story_keys WHERE article_id = ?",
                            [ids[0]]).fetchone()[0] == 0
    store.close()


def test_band_keys_equal_for_equal_bands_only() -> None:
    sig = signature(text(WIRE))
    assert sig is not None
    keys = band_keys(sig)
    assert len(keys) == len(set(keys)) == 32
    assert all(0 <= k < 2**63 for k in keys)
    changed = sig.copy()
    changed[5] += 1  # band 1 (rows 4-7) differs, the others do not
    other = band_keys(changed)
    assert [a == b for a, b in zip(keys, other, strict=True)] == [i != 1 for i in range(32)]
